// A layer's bias, read and shifted: Conv, ConvTranspose and Gemm hold it as input 2; a MatMul's
// is the constant of the Add that follows it. Compensation and reconstruction of pruned channels
// move it; a layer without one gets a bias input (a MatMul an Add).
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import { addConstant } from '../../optimize/util/write-constant.js';

/** The bias added to each of the layer's `outputs` (zeros without one), or undefined when its layout is not one addLayerBias handles. */
export function layerBias(graph: Graph, node: Node, outputs: number): Float32Array | undefined {
  if (node.opType === 'MatMul') {
    const add = matMulAdd(graph, node);
    if (add === undefined) return new Float32Array(outputs);
    const bias = constantValue(graph, add.inputs[add.biasAt]) as Tensor;
    return perOutput(bias, outputs) ? Float32Array.from(bias.data() as Float32Array) : undefined;
  }
  const name = node.inputs[2];
  if (!name) return new Float32Array(outputs);
  const bias = constantValue(graph, name);
  if (bias === undefined || bias.dataType !== DataType.FLOAT) return undefined;
  const values = bias.data() as Float32Array;
  if (bias.elementCount === outputs && (bias.dims.length === 1 || bias.dims[0] === 1)) return Float32Array.from(values);
  if (bias.elementCount === 1) return new Float32Array(outputs).fill(values[0]);
  return undefined;
}

/** Whether an Add's constant after a MatMul is one float per output (along its last axis). */
function perOutput(bias: Tensor, outputs: number): boolean {
  return bias.dataType === DataType.FLOAT && bias.elementCount === outputs && bias.dims[bias.dims.length - 1] === outputs;
}

/** The Add after a MatMul that holds its bias, and which of its inputs the bias is. */
function matMulAdd(graph: Graph, node: Node): { inputs: string[]; biasAt: number; node: Node } | undefined {
  const out = node.outputs[0];
  const readers = graph.consumers(out);
  const add = readers.length === 1 && readers[0].opType === 'Add' && !graph.isGraphOutput(out) ? readers[0] : undefined;
  const biasAt = add === undefined ? -1 : add.inputs.findIndex((n, i) => n !== out && constantValue(graph, n) !== undefined && i < 2);
  return add === undefined || biasAt < 0 ? undefined : { inputs: add.inputs, biasAt, node: add };
}

/** Adds `delta` to the layer's bias (creating one where needed). False when the layout is not handled. */
export function addLayerBias(model: Model, graph: Graph, node: Node, delta: Float32Array): boolean {
  const N = delta.length;
  if (node.opType === 'MatMul') return addAfterMatMul(model, graph, node, delta);
  const at = 2;
  const name = node.inputs[at];
  if (!name) {
    const tensor = Tensor.fromArray(graph.uniqueName(`${node.name || node.opType}_bias`), DataType.FLOAT, [N], delta);
    addConstant(model, graph, tensor, node);
    while (node.inputs.length <= at) node.inputs.push('');
    node.inputs[at] = tensor.name;
    graph.changed();
    return true;
  }
  const bias = constantValue(graph, name);
  if (bias === undefined || bias.dataType !== DataType.FLOAT) return false;
  const values = bias.data() as Float32Array;
  const scope = graph.scopeOf(name) ?? graph;
  if (bias.elementCount === N && (bias.dims.length === 1 || bias.dims[0] === 1)) {
    replaceConstant(model, scope, name, Tensor.fromArray(name, DataType.FLOAT, bias.dims, values.map((v, i) => v + delta[i])), [{ graph, node, input: at }]);
    return true;
  }
  if (bias.elementCount === 1) {
    replaceConstant(model, scope, name, Tensor.fromArray(name, DataType.FLOAT, [N], delta.map((d) => d + values[0])), [{ graph, node, input: at }]);
    return true;
  }
  return false;
}

/** A MatMul's bias is the constant of the Add that follows it, or a new Add. */
function addAfterMatMul(model: Model, graph: Graph, node: Node, delta: Float32Array): boolean {
  const out = node.outputs[0];
  const found = matMulAdd(graph, node);
  if (found !== undefined) {
    const { node: add, biasAt } = found;
    const name = add.inputs[biasAt];
    const bias = constantValue(graph, name) as Tensor;
    if (perOutput(bias, delta.length)) {
      const values = bias.data() as Float32Array;
      replaceConstant(model, graph.scopeOf(name) ?? graph, name, Tensor.fromArray(name, DataType.FLOAT, bias.dims, values.map((v, i) => v + delta[i])), [{ graph, node: add, input: biasAt }]);
      return true;
    }
  }
  const raw = graph.uniqueName(`${out}_uncompensated`);
  const tensor = Tensor.fromArray(graph.uniqueName(`${node.name || 'MatMul'}_bias`), DataType.FLOAT, [delta.length], delta);
  addConstant(model, graph, tensor, node);
  node.outputs[0] = raw;
  graph.addNode(new Node({ opType: 'Add', inputs: [raw, tensor.name], outputs: [out], name: graph.uniqueName(`${node.name || 'MatMul'}_compensation`), attributes: [] }), graph.nodes.indexOf(node) + 1);
  graph.changed();
  return true;
}
