// The first model of optimum's separate pair (decoder_model.onnx beside decoder_with_past_model.onnx)
// from a merged decoder: the past_key_values.{i}.key/value inputs are gone and every one reads an
// empty cache [batch, heads, 0, head_dim] built in the graph (batch from input_ids at run time);
// the present outputs stay, so its prompt run hands the cache to the with-past model, which is the
// merged model itself run with a past of length 1 or more. Exact: a Concat with an empty past is
// the new keys/values alone, the model's causal mask covers past + sequence = sequence.
import { attr } from '../ir/attribute.js';
import { DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { DecoderSignature } from '../eval/decoder.js';

/** A copy of the merged decoder `model` (signature `sig`) without past inputs; `model` is not changed. */
export function decoderWithoutPast(model: Model, sig: DecoderSignature): Model {
  if (sig.cache.length === 0) throw new Error('decoder without past: the model has no past_key_values inputs to remove');
  const copy = model.clone();
  const graph = copy.graph;
  const pasts = new Set(sig.cache.flatMap((p) => [p.pastKey, p.pastValue]));
  graph.inputs = graph.inputs.filter((i) => !pasts.has(i.name));
  const name = (base: string) => graph.uniqueName(`empty_past_${base}`);
  const constant = (base: string, values: bigint[]) => {
    const tensor = Tensor.fromArray(name(base), DataType.INT64, [values.length], BigInt64Array.from(values));
    graph.initializers.push(tensor);
    return tensor.name;
  };
  const shape = name('ids_shape');
  const batch = name('batch');
  const dims = name('dims');
  const empty = name('tensor');
  const zero = Tensor.fromArray('value', sig.cacheType, [1], sig.cacheType === DataType.FLOAT16 ? new Uint16Array(1) : new Float32Array(1));
  const nodes = [
    new Node({ opType: 'Shape', name: name('Shape'), inputs: [sig.inputIds], outputs: [shape] }),
    new Node({ opType: 'Slice', name: name('Slice'), inputs: [shape, constant('start', [0n]), constant('end', [1n])], outputs: [batch] }),
    new Node({ opType: 'Concat', name: name('Concat'), inputs: [batch, constant('rest', [BigInt(sig.heads), 0n, BigInt(sig.headDim)])], outputs: [dims], attributes: [attr.int('axis', 0)] }),
    new Node({ opType: 'ConstantOfShape', name: name('ConstantOfShape'), inputs: [dims], outputs: [empty], attributes: [attr.tensor('value', zero)] }),
  ];
  graph.nodes.unshift(...nodes);
  for (const node of graph.nodes) node.inputs = node.inputs.map((v) => (pasts.has(v) ? empty : v));
  graph.changed();
  return copy;
}
