// ONNX's backend-test data sets: a model plus folders `test_data_set_N/` holding `input_K.pb` and
// `output_K.pb`, each a serialized TensorProto (or a SequenceProto/OptionalProto when the graph
// value is a sequence or optional). File K belongs to the K-th graph input or output, counted in
// declaration order; inputs that are also initializers are skipped since IR 4 made them optional
// overrides and runtimes do not list them as feeds. Reading bytes is left to the caller, so this
// runs in a browser as well as in Node.
import { fromBinary } from '@bufbuild/protobuf';
import type { Graph } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { formatType, tensorTypeOf } from '../ir/value-info.js';
import { TensorProtoSchema, type ValueInfoProto } from '../onnx/onnx_pb.js';

/** The encoded files of one data set, in index order (input_0, input_1, ...). */
export interface TestDataFiles {
  name: string;
  inputs: Uint8Array[];
  outputs: Uint8Array[];
}

/** A data set bound to its graph: tensors renamed after the graph values they belong to. */
export interface BoundTestData {
  feeds: Tensor[];
  expected: Tensor[];
}

/** Why a data set cannot be fed as tensors (a short category first, then detail). */
export interface UnboundTestData {
  skip: string;
}

/** Decodes one `.pb` file as a TensorProto; `where` names it in errors. */
export function readTestTensor(bytes: Uint8Array, where: string): Tensor {
  let proto;
  try {
    proto = fromBinary(TensorProtoSchema, bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${where}: not a TensorProto (${reason})`);
  }
  return Tensor.fromProto(proto, where);
}

/** The graph inputs a caller feeds: declared inputs that are not initializers. */
export function feedInputs(graph: Graph): ValueInfoProto[] {
  return graph.inputs.filter((input) => graph.initializer(input.name) === undefined);
}

/**
 * Matches a data set's files to the graph's inputs and outputs by position and decodes them.
 * Non-tensor values (sequences, optionals, maps) come back as a skip, since their files are not
 * TensorProtos; so do data sets whose file counts do not fit the graph.
 */
export function bindTestData(graph: Graph, files: TestDataFiles, where: string): BoundTestData | UnboundTestData {
  const inputs = feedInputs(graph);
  if (files.inputs.length > inputs.length) {
    return { skip: `file count: ${files.inputs.length} input files for ${inputs.length} graph inputs` };
  }
  if (files.outputs.length > graph.outputs.length) {
    return { skip: `file count: ${files.outputs.length} output files for ${graph.outputs.length} graph outputs` };
  }
  // A data set may leave trailing optional inputs out; the runtime then sees them as absent.
  const nonTensor = [...inputs.slice(0, files.inputs.length), ...graph.outputs.slice(0, files.outputs.length)].find(
    (value) => tensorTypeOf(value) === undefined && value.type?.value.case !== undefined,
  );
  if (nonTensor !== undefined) return { skip: `non-tensor value: '${nonTensor.name}' is ${formatType(nonTensor)}` };
  const decode = (bytes: Uint8Array, value: ValueInfoProto, file: string): Tensor => {
    const tensor = readTestTensor(bytes, `${where}/${files.name}/${file}`);
    tensor.name = value.name;
    return tensor;
  };
  return {
    feeds: files.inputs.map((bytes, k) => decode(bytes, inputs[k], `input_${k}.pb`)),
    expected: files.outputs.map((bytes, k) => decode(bytes, graph.outputs[k], `output_${k}.pb`)),
  };
}
