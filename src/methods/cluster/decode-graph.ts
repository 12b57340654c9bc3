// How a clustered weight is written in standard ONNX, and how to find one again (the pack, the
// centroid fine-tuning and the uniform fold read it back). For a weight W (names get a numeric
// suffix only if taken):
//
//   W_codes            uint8 constant, W's dims; each code < K = 2^bits
//   W_codebook         float32 constant [G * K]: G groups of K centroids, ascending within a group
//                      as k-means writes them (unused slots repeat the group's last centroid);
//                      centroid fine-tuning may reorder them, the codes still name the same slots
//   W_codebook_offsets int32 constant, rank of W, dims 1 except the channel axis (C): g(c) * K.
//                      Only when G > 1 (--per-channel: g(c) = c; --group N: g(c) = floor(c / N)).
//   W_codes_int32      = Cast(W_codes, to=INT32)
//   W_codes_offset     = Add(W_codes_int32, W_codebook_offsets)            (G > 1 only)
//   W_clustered        = Gather(W_codebook, W_codes_int32 | W_codes_offset, axis=0)
//
// and every layer that read W reads W_clustered. A codebook that is a uniform grid is written as
//   W_clustered = DequantizeLinear(W_codes (shifted), W_codes_scale, W_codes_zero_point[, axis])
// instead (uint8 zero points; per-axis scales when G > 1). The constants are initializers (Constant
// nodes in the main graph of IR < 4 models), in the graph that defined W (an If/Loop body too).
// Node names: W_codes_Cast, W_codes_Add, W_codebook_Gather, W_codes_DequantizeLinear. onnxruntime folds the decoding into a dense weight
// when it loads the model (constant folding runs at its 'basic' level), so inference runs at the
// dense speed; what shrinks is the file, and much more its compressed download.
import { attr } from '../../ir/attribute.js';
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import type { ConstantReader } from '../../graph-edit/replace-constant.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { dropUnreadConstant } from '../quantize/weight-tensors.js';
import type { Codebook } from './codebook.js';

export interface WrittenCluster {
  form: 'gather' | 'dequantize-linear';
  /** The decoded weight the layers read now. */
  output: string;
  codes: string;
  /** The float codebook (form 'gather'), or the scale (form 'dequantize-linear'). */
  codebook: string;
  /** Bytes of every constant written. */
  bytes: number;
}

/**
 * Adds `tensors` and `nodes` to `scope`, the constants first, all just before the first of
 * `readers` in it (its first node when they all sit in subgraphs), so the graph stays in order.
 */
function insert(model: Model, scope: Graph, tensors: Tensor[], nodes: Node[], readers: readonly ConstantReader[]): void {
  const local = new Set(readers.filter((r) => r.graph === scope).map((r) => r.node));
  const anchor = scope.nodes.find((n) => local.has(n)) ?? scope.nodes[0];
  for (const t of tensors) addConstant(model, scope, t, anchor);
  for (const n of nodes) scope.addNode(n, anchor === undefined ? undefined : scope.nodes.indexOf(anchor));
}

/** Makes `readers` of `name` read `output` instead, and drops `name` when nothing reads it any more. */
function rewire(scope: Graph, name: string, output: string, readers: readonly ConstantReader[]): void {
  for (const r of readers) {
    r.node.inputs[r.input] = output;
    r.graph.changed();
  }
  scope.changed();
  dropUnreadConstant(scope, name);
}

/** Writes the Gather form of weight `name` (defined in `scope`) for `readers`. */
export function writeGatherForm(model: Model, scope: Graph, name: string, dims: readonly number[], book: Codebook, axis: number | undefined, readers: readonly ConstantReader[]): WrittenCluster {
  const fresh = (suffix: string) => scope.uniqueName(`${name}_${suffix}`);
  const codes = Tensor.fromArray(fresh('codes'), DataType.UINT8, dims, book.codes);
  const codebook = Tensor.fromArray(fresh('codebook'), DataType.FLOAT, [book.codebook.length], book.codebook);
  const tensors = [codes, codebook];
  const asInt = fresh('codes_int32');
  const nodes = [new Node({ opType: 'Cast', inputs: [codes.name], outputs: [asInt], name: fresh('codes_Cast'), attributes: [attr.int('to', DataType.INT32)] })];
  let indices = asInt;
  if (book.groups > 1 && axis !== undefined && book.groupOfChannel !== undefined) {
    const offsetDims = dims.map((d, k) => (k === axis ? d : 1));
    const offsets = Tensor.fromArray(fresh('codebook_offsets'), DataType.INT32, offsetDims, Int32Array.from(book.groupOfChannel, (g) => g * book.stride));
    tensors.push(offsets);
    indices = fresh('codes_offset');
    nodes.push(new Node({ opType: 'Add', inputs: [asInt, offsets.name], outputs: [indices], name: fresh('codes_Add') }));
  }
  const output = fresh('clustered');
  nodes.push(new Node({ opType: 'Gather', inputs: [codebook.name, indices], outputs: [output], name: fresh('codebook_Gather'), attributes: [attr.int('axis', 0)] }));
  insert(model, scope, tensors, nodes, readers);
  rewire(scope, name, output, readers);
  return { form: 'gather', output, codes: codes.name, codebook: codebook.name, bytes: tensors.reduce((n, t) => n + t.byteLength, 0) };
}

/** Writes the DequantizeLinear form: codes shifted per group, one scale and uint8 zero point per group (per channel along `axis`). */
export function writeDequantizeForm(model: Model, scope: Graph, name: string, dims: readonly number[], book: Codebook, grid: { scales: Float32Array; zeroPoints: Uint8Array; shifts: Int32Array }, axis: number | undefined, readers: readonly ConstantReader[]): WrittenCluster {
  const fresh = (suffix: string) => scope.uniqueName(`${name}_${suffix}`);
  const perAxis = book.groups > 1 && axis !== undefined && book.groupOfChannel !== undefined;
  const groupAt = (i: number): number => {
    if (!perAxis) return 0;
    const inner = dims.slice((axis as number) + 1).reduce((a, b) => a * b, 1);
    return (book.groupOfChannel as Int32Array)[Math.floor(i / inner) % dims[axis as number]];
  };
  const shifted = Uint8Array.from(book.codes, (c, i) => c + grid.shifts[groupAt(i)]);
  const codes = Tensor.fromArray(fresh('codes'), DataType.UINT8, dims, shifted);
  const channels = perAxis ? (book.groupOfChannel as Int32Array) : Int32Array.of(0);
  const scaleDims = perAxis ? [channels.length] : [];
  const scale = Tensor.fromArray(fresh('codes_scale'), DataType.FLOAT, scaleDims, Float32Array.from(channels, (g) => grid.scales[g]));
  const zeroPoint = Tensor.fromArray(fresh('codes_zero_point'), DataType.UINT8, scaleDims, Uint8Array.from(channels, (g) => grid.zeroPoints[g]));
  const output = fresh('clustered');
  const node = new Node({
    opType: 'DequantizeLinear',
    inputs: [codes.name, scale.name, zeroPoint.name],
    outputs: [output],
    name: fresh('codes_DequantizeLinear'),
    attributes: perAxis ? [attr.int('axis', axis as number)] : [],
  });
  insert(model, scope, [codes, scale, zeroPoint], [node], readers);
  rewire(scope, name, output, readers);
  return { form: 'dequantize-linear', output, codes: codes.name, codebook: scale.name, bytes: codes.byteLength + scale.byteLength + zeroPoint.byteLength };
}

/** A clustered weight found in a graph (the Gather form). */
export interface FoundCluster {
  graph: Graph;
  gather: Node;
  codes: string;
  codebook: string;
  /** The int32 offsets constant (G > 1), or undefined. */
  offsets: string | undefined;
  /** Centroids per group (K = 2^bits): the smallest nonzero offset, or the codebook's length. */
  stride: number;
}

/**
 * Every Gather in `model` (all graphs) that decodes uint8 codes through a float codebook as
 * written by writeGatherForm: Gather(float 1-D constant, Cast(uint8 constant) [+ int32 constant]).
 */
export function findClusters(model: Model): FoundCluster[] {
  const found: FoundCluster[] = [];
  for (const { node, graph } of model.graph.allNodes()) {
    if (node.opType !== 'Gather' || !isStandardDomain(node.domain) || node.attrInt('axis', 0) !== 0) continue;
    const codebook = constantValue(graph, node.inputs[0]);
    if (codebook === undefined || codebook.dataType !== DataType.FLOAT || codebook.dims.length !== 1) continue;
    let cast = graph.producer(node.inputs[1]);
    let offsets: string | undefined;
    if (cast?.opType === 'Add') {
      const [a, b] = cast.inputs;
      const offsetTensor = constantValue(graph, b);
      if (offsetTensor === undefined || offsetTensor.dataType !== DataType.INT32) continue;
      offsets = b;
      cast = graph.producer(a);
    }
    if (cast?.opType !== 'Cast' || cast.attrInt('to', 0) !== DataType.INT32) continue;
    const codes = constantValue(graph, cast.inputs[0]);
    if (codes === undefined || codes.dataType !== DataType.UINT8) continue;
    let stride = codebook.elementCount;
    if (offsets !== undefined) {
      const values = constantValue(graph, offsets)?.data() as Int32Array;
      for (const v of values) if (v > 0 && v < stride) stride = v;
    }
    found.push({ graph, gather: node, codes: cast.inputs[0], codebook: node.inputs[0], offsets, stride });
  }
  return found;
}
