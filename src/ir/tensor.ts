// A constant tensor: an initializer, a Constant node's value, or a tensor-valued attribute.
// It wraps the TensorProto it was read from so that an untouched tensor is written back exactly
// as it came (same storage form, same doc string, same external reference), and its bytes stay a
// view into the input file until someone replaces them.
import { create } from '@bufbuild/protobuf';
import { type ExternalDataRef, type ExternalDataSource, parseExternalDataEntries } from '../onnx/external-data.js';
import { StringStringEntryProtoSchema, type TensorProto, TensorProto_DataLocation, TensorProtoSchema } from '../onnx/onnx_pb.js';
import { inlineTensorBytes } from '../onnx/tensor-data.js';
import { DataType, type TypedArray, byteLengthOf, dataTypeInfo, dataTypeName } from './dtype.js';
import { dimsFromProto, elementCount } from './shape.js';

export class Tensor {
  name: string;
  readonly dataType: DataType;
  readonly dims: readonly number[];
  /** The proto it was decoded from; undefined for tensors made in code. */
  private proto: TensorProto | undefined;
  private raw: Uint8Array | undefined;
  private aligned: TypedArray | undefined;
  private readonly externalRef: ExternalDataRef | undefined;
  private readonly externalSource: ExternalDataSource | undefined;
  private stringValues: Uint8Array[] | undefined;

  private constructor(
    name: string,
    dataType: DataType,
    dims: readonly number[],
    init: {
      proto?: TensorProto;
      raw?: Uint8Array;
      strings?: Uint8Array[];
      external?: ExternalDataRef;
      source?: ExternalDataSource;
    },
  ) {
    this.name = name;
    this.dataType = dataType;
    this.dims = dims;
    this.proto = init.proto;
    this.raw = init.raw;
    this.stringValues = init.strings;
    this.externalRef = init.external;
    this.externalSource = init.source;
  }

  /**
   * Wraps a decoded TensorProto. Checks what can be checked without reading external bytes:
   * known type, sane dims, data size matching the dims. `where` names it in errors.
   */
  static fromProto(proto: TensorProto, where: string, source?: ExternalDataSource): Tensor {
    const info = dataTypeInfo(proto.dataType, where);
    const dims = dimsFromProto(proto.dims, where);
    const count = elementCount(dims, where);
    const type = info.type;
    if (type === DataType.STRING) {
      if (proto.stringData.length !== count && !(proto.stringData.length === 0 && count === 0)) {
        throw new Error(`${where}: string_data holds ${proto.stringData.length} strings, dims need ${count}`);
      }
      return new Tensor(proto.name, type, dims, { proto, strings: proto.stringData });
    }
    const need = byteLengthOf(type, count);
    if (proto.dataLocation === TensorProto_DataLocation.EXTERNAL) {
      const ref = parseExternalDataEntries(proto.externalData, where);
      if (source === undefined) {
        throw new Error(`${where}: data is in external file '${ref.location}', but no folder to read it from was given`);
      }
      let fileSize: number;
      try {
        fileSize = source.size(ref.location);
      } catch {
        throw new Error(`${where}: external data file '${ref.location}' is missing`);
      }
      const length = ref.length ?? fileSize - ref.offset;
      if (length !== need) {
        throw new Error(`${where}: external data length is ${length} bytes, dims ${fmtDims(dims)} of ${info.name} need ${need}`);
      }
      if (ref.offset + length > fileSize) {
        throw new Error(
          `${where}: external data '${ref.location}' is truncated (needs bytes up to ${ref.offset + length}, file has ${fileSize})`,
        );
      }
      return new Tensor(proto.name, type, dims, { proto, external: { ...ref, length }, source });
    }
    const raw = inlineTensorBytes(proto, type, count, where);
    if (raw.byteLength !== need) {
      throw new Error(`${where}: holds ${raw.byteLength} bytes, dims ${fmtDims(dims)} of ${info.name} need ${need}`);
    }
    return new Tensor(proto.name, type, dims, { proto, raw });
  }

  /** A tensor whose bytes are in an external file (`source` reads them), made in code: a spilled tensor. */
  static external(name: string, dataType: DataType, dims: readonly number[], ref: { location: string; offset: number }, source: ExternalDataSource): Tensor {
    const length = byteLengthOf(dataType, elementCount(dims, name));
    return new Tensor(name, dataType, [...dims], { external: { location: ref.location, offset: ref.offset, length }, source });
  }

  /** A tensor over raw little-endian bytes (kept as given, not copied). */
  static fromBytes(name: string, dataType: DataType, dims: readonly number[], bytes: Uint8Array): Tensor {
    const need = byteLengthOf(dataType, elementCount(dims, name));
    if (bytes.byteLength !== need) {
      throw new Error(`tensor '${name}': got ${bytes.byteLength} bytes, dims ${fmtDims(dims)} of ${dataTypeName(dataType)} need ${need}`);
    }
    return new Tensor(name, dataType, [...dims], { raw: bytes });
  }

  /** A tensor over a typed array whose element type matches `dataType`'s storage. */
  static fromArray(name: string, dataType: DataType, dims: readonly number[], data: TypedArray): Tensor {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return Tensor.fromBytes(name, dataType, dims, bytes);
  }

  static fromStrings(name: string, dims: readonly number[], values: Uint8Array[]): Tensor {
    if (values.length !== elementCount(dims, name)) throw new Error(`tensor '${name}': ${values.length} strings for dims ${fmtDims(dims)}`);
    return new Tensor(name, DataType.STRING, [...dims], { strings: values });
  }

  /**
   * A tensor of its own (name and all) over the same bytes: neither copy ever writes its bytes,
   * so sharing them is safe, and a clone of a 20 GB model costs no weight memory.
   */
  clone(): Tensor {
    const copy = new Tensor(this.name, this.dataType, this.dims, {
      proto: this.proto,
      raw: this.raw,
      strings: this.stringValues,
      external: this.externalRef,
      source: this.externalSource,
    });
    copy.aligned = this.aligned;
    return copy;
  }

  get elementCount(): number {
    return elementCount(this.dims, this.name);
  }

  /** Bytes of the element data (what raw_data or the external file holds). */
  get byteLength(): number {
    if (this.dataType === DataType.STRING) return (this.stringValues ?? []).reduce((n, s) => n + s.byteLength, 0);
    return byteLengthOf(this.dataType, this.elementCount);
  }

  get isExternal(): boolean {
    return this.externalRef !== undefined && this.raw === undefined;
  }

  /** Where the bytes sit in an external file, when they were read from one. */
  get external(): Readonly<ExternalDataRef> | undefined {
    return this.externalRef;
  }

  /** The file on disk holding an external tensor's bytes, when its source knows one (Node). */
  get externalFile(): string | undefined {
    if (!this.isExternal || this.externalRef === undefined) return undefined;
    return this.externalSource?.path?.(this.externalRef.location);
  }

  /** Raw little-endian bytes: a view into the input where possible, read on demand if external. */
  bytes(): Uint8Array {
    if (this.raw !== undefined) return this.raw;
    if (this.externalRef !== undefined && this.externalSource !== undefined) {
      const { location, offset, length } = this.externalRef;
      // Not cached: a pass touches one tensor at a time, and caching would hold the whole model.
      return this.externalSource.read(location, offset, length ?? 0);
    }
    throw new Error(`tensor '${this.name}': string tensors have no raw bytes`);
  }

  /**
   * The elements in an aligned typed array of the type's storage class (Float32Array for float,
   * Uint16Array for float16 bit patterns, Uint8Array of packed bytes for 4- and 2-bit types).
   * Copied once from the raw bytes when they are not 4/8-byte aligned, then cached.
   */
  data(): TypedArray {
    if (this.aligned !== undefined) return this.aligned;
    const ctor = dataTypeInfo(this.dataType).array;
    if (ctor === undefined) throw new Error(`tensor '${this.name}': ${dataTypeName(this.dataType)} has no typed array`);
    const bytes = this.bytes();
    const width = ctor.BYTES_PER_ELEMENT;
    const length = bytes.byteLength / width;
    const array =
      bytes.byteOffset % width === 0
        ? new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, length)
        : new ctor(new Uint8Array(bytes).buffer, 0, length);
    if (!this.isExternal) this.aligned = array;
    return array;
  }

  strings(): Uint8Array[] {
    if (this.stringValues === undefined) throw new Error(`tensor '${this.name}' is ${dataTypeName(this.dataType)}, not string`);
    return this.stringValues;
  }

  /**
   * The TensorProto to write. Untouched tensors give back their original proto; the `external`
   * option asks for the data to be stored outside (the caller writes the bytes to `location`).
   */
  toProto(external?: { location: string; offset: number }): TensorProto {
    if (external === undefined && this.proto !== undefined && !this.isExternal) {
      if (this.proto.name === this.name) return this.proto;
      return withName(this.proto, this.name);
    }
    const base = this.proto === undefined ? create(TensorProtoSchema) : emptyDataCopy(this.proto);
    base.name = this.name;
    base.dataType = this.dataType;
    base.dims = this.dims.map(BigInt);
    if (this.dataType === DataType.STRING) {
      base.stringData = this.strings();
    } else if (external !== undefined) {
      base.dataLocation = TensorProto_DataLocation.EXTERNAL;
      base.externalData = [
        { key: 'location', value: external.location },
        { key: 'offset', value: String(external.offset) },
        { key: 'length', value: String(this.byteLength) },
      ].map((e) => create(StringStringEntryProtoSchema, e));
    } else {
      base.rawData = this.bytes();
    }
    return base;
  }
}

/** A copy of the proto that keeps its metadata (doc string, unknown fields) but none of its data. */
function emptyDataCopy(proto: TensorProto): TensorProto {
  const copy = create(TensorProtoSchema);
  copy.docString = proto.docString;
  copy.metadataProps = proto.metadataProps;
  if (proto.$unknown !== undefined) copy.$unknown = proto.$unknown;
  return copy;
}

function withName(proto: TensorProto, name: string): TensorProto {
  const copy: TensorProto = Object.assign(Object.create(Object.getPrototypeOf(proto)), proto);
  copy.name = name;
  return copy;
}

function fmtDims(dims: readonly number[]): string {
  return `[${dims.join(',')}]`;
}
