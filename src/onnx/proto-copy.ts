// A shallow copy of a decoded protobuf message that keeps field presence and unknown fields
// (protobuf-es marks a set proto2 field as an own property; unset ones live on the prototype).
export function shallowCopy<T extends object>(message: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(message)), message);
}
