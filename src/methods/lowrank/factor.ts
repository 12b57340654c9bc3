// Rewrites one layer into two through rank r, given the SVD of its stored weight [p, q] = U S Vᵀ.
// The factors split S evenly, L = U √S [p, r] and R = √S Vᵀ [r, q], so neither carries the whole
// scale (better conditioned for fine-tuning and for half precision):
//   MatMul(X, W[K, N])            -> MatMul(MatMul(X, L[K, r]), R[r, N])
//   Gemm(A, W[K, N], C)           -> Gemm(Gemm(A, L[K, r]; transA), R[r, N], C; alpha, beta)
//   Gemm(A, W[N, K], C; transB=1) -> Gemm(Gemm(A, R[r, K]; transA, transB), L[N, r], C; alpha, beta, transB)
//                                    (op(W) = Wᵀ = Rᵀ Lᵀ: both factors keep the [out, in] layout)
//   Conv(X, W[M, C, k..], B)      -> Conv(Conv(X, R as [r, C, k..]; every attribute), L as [M, r, 1..], B)
//                                    (spatial SVD: the k x k conv makes r channels, a 1 x 1 mixes them)
// alpha, beta and the bias stay on the second node, so Y = alpha op(A) op(W1) op(W2) + beta C
// exactly as before. The second node keeps the layer's name and output; the first is new. Gemm's
// C became optional in opset 11: below it, the first Gemm reads a zero C.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import type { Svd } from '../../kernels/svd-ref.js';
import type { LowRankTarget } from './layers.js';

/** The two factors of the stored weight at rank `svd.k`, in the weight's type. */
export function splitFactors(svd: Svd, dataType: DataType): { left: Float32Array | Float64Array; right: Float32Array | Float64Array } {
  const { m: p, n: q, k: r } = svd;
  const make = (n: number) => (dataType === DataType.DOUBLE ? new Float64Array(n) : new Float32Array(n));
  const left = make(p * r);
  const right = make(r * q);
  const roots = Float64Array.from(svd.s, Math.sqrt);
  for (let i = 0; i < p; i++) for (let k = 0; k < r; k++) left[i * r + k] = svd.u[i * r + k] * roots[k];
  for (let k = 0; k < r; k++) for (let j = 0; j < q; j++) right[k * q + j] = roots[k] * svd.v[j * r + k];
  return { left, right };
}

/**
 * Replaces `target`'s weight by its rank-`svd.k` factors in every reader and removes the weight.
 * Returns the names of the two factor constants.
 */
export function factorLayer(model: Model, target: LowRankTarget, svd: Svd): { first: string; second: string } {
  const { scope, weight, layout } = target;
  const r = svd.k;
  const { left, right } = splitFactors(svd, weight.dataType);
  const dims = weight.dims;
  // The first node reads `inFactor`, the second `outFactor` (see the table at the top).
  const [inData, inDims, outData, outDims] =
    layout === 'matrix'
      ? [left, [target.rows, r], right, [r, target.cols]]
      : layout === 'transposed'
        ? [right, [r, target.cols], left, [target.rows, r]]
        : [right, [r, ...dims.slice(1)], left, [dims[0], r, ...dims.slice(2).map(() => 1)]];
  const storedAsNode = scope.initializer(target.name) === undefined;
  const first = store(model, scope, Tensor.fromArray(scope.uniqueName(`${target.name}_lowrank_in`), weight.dataType, inDims, inData), storedAsNode);
  const second = store(model, scope, Tensor.fromArray(scope.uniqueName(`${target.name}_lowrank_out`), weight.dataType, outDims, outData), storedAsNode);
  for (const reader of target.readers) splitNode(model, reader.graph, reader.node, first, second, layout, weight.dataType);
  removeConstant(scope, target.name);
  return { first, second };
}

/** Adds `tensor` to `scope` as the original weight was held: a Constant node, or an initializer. */
function store(model: Model, scope: Graph, tensor: Tensor, asNode: boolean): string {
  if (asNode) scope.addNode(new Node({ opType: 'Constant', outputs: [tensor.name], name: scope.uniqueName(`${tensor.name}_Constant`), attributes: [attr.tensor('value', tensor)] }), 0);
  else addConstant(model, scope, tensor);
  return tensor.name;
}

function splitNode(model: Model, graph: Graph, node: Node, first: string, second: string, layout: LowRankTarget['layout'], dataType: DataType): void {
  const middle = graph.uniqueName(`${node.outputs[0]}_lowrank`);
  const input = node.inputs[0];
  let head: Node;
  if (node.opType === 'MatMul') {
    head = new Node({ opType: 'MatMul', inputs: [input, first], outputs: [middle] });
  } else if (node.opType === 'Gemm') {
    const inputs = [input, first];
    if ((model.opset() ?? 11) < 11) {
      const zero = Tensor.fromArray(graph.uniqueName(`${middle}_zero`), dataType, [1], dataType === DataType.DOUBLE ? new Float64Array(1) : new Float32Array(1));
      addConstant(model, graph, zero, node);
      inputs.push(zero.name);
    }
    head = new Node({ opType: 'Gemm', inputs, outputs: [middle], attributes: [attr.int('transA', node.attrInt('transA', 0)), attr.int('transB', layout === 'transposed' ? 1 : 0)] });
    node.setAttribute(attr.int('transA', 0));
  } else {
    // Every attribute (kernel_shape, strides, pads, dilations, auto_pad) stays on the k x k conv.
    head = new Node({ opType: 'Conv', inputs: [input, first], outputs: [middle], attributes: node.attributes.map((a) => ({ ...a })) });
    const spatial = (node.attribute('kernel_shape')?.value as bigint[] | undefined)?.length;
    node.attributes = node.attributes.filter((a) => a.name === 'group');
    if (spatial !== undefined) node.setAttribute(attr.ints('kernel_shape', new Array(spatial).fill(1)));
  }
  head.domain = node.domain;
  head.name = graph.uniqueName(`${node.name || node.opType}_lowrank_in`);
  graph.addNode(head, graph.nodes.indexOf(node));
  node.inputs[0] = middle;
  node.inputs[1] = second;
  graph.changed();
}

/** Removes the weight `name` from `scope` (an initializer or the Constant node producing it). */
function removeConstant(scope: Graph, name: string): void {
  if (scope.initializer(name) !== undefined) scope.removeInitializer(name);
  else {
    const producer = scope.producer(name);
    if (producer !== undefined) scope.removeNode(producer);
  }
  scope.valueInfo = scope.valueInfo.filter((v) => v.name !== name);
  scope.changed();
}
