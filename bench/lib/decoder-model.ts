// A generated decoder-like model of a chosen size, written with its weights in an external data
// file one tensor at a time (a 20 GB model never sits in memory): token embedding (Gather), then
// per layer the four attention projections and a two-matrix MLP as MatMuls with residual Adds
// and LayerNormalization, then the LM head. Attention itself is left out: what matters for these
// benchmarks is the shape of the weights (D x D, D x 4D, 4D x D, V x D) and their number.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType } from '../../src/ir/dtype.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { Node } from '../../src/ir/node.js';
import { attr } from '../../src/ir/attribute.js';
import { Tensor } from '../../src/ir/tensor.js';
import { makeValueInfo } from '../../src/ir/value-info.js';
import { folderExternalData } from '../../src/node/model-files.js';
import { writeModelChunks } from '../../src/onnx/model-io.js';

export interface DecoderShape {
  /** Hidden size D. */
  hidden: number;
  layers: number;
  vocabulary: number;
}

/** Float32 bytes of the weights of `shape`. */
export function decoderBytes(shape: DecoderShape): number {
  const { hidden: d, layers, vocabulary: v } = shape;
  return 4 * (2 * v * d + layers * (12 * d * d + 4 * d) + 2 * d);
}

/** The shape of about `bytes` of weights (D 2048 below 2 GB, 4096 above; 32k or 16k vocabulary). */
export function decoderShapeFor(bytes: number): DecoderShape {
  const hidden = bytes < 2e9 ? 2048 : 4096;
  const vocabulary = bytes < 2e9 ? 16000 : 32000;
  const fixed = decoderBytes({ hidden, layers: 0, vocabulary });
  const layers = Math.max(1, Math.round((bytes - fixed) / decoderBytes({ hidden, layers: 1, vocabulary: 0 })));
  return { hidden, layers, vocabulary };
}

/**
 * Writes `folder/name` and `folder/name.data`. Weights are seeded pseudo-random values with the
 * spread of a trained layer (about 1/sqrt(fan-in)); generating and writing one tensor at a time.
 */
export function writeDecoderModel(folder: string, name: string, shape: DecoderShape, seed = 1): string {
  const file = path.join(folder, name);
  const dataName = `${name}.data`;
  const dataFile = path.join(folder, dataName);
  const source = folderExternalData(folder);
  const fd = fs.openSync(dataFile, 'w');
  let offset = 0;
  let state = seed >>> 0 || 1;
  const weight = (tensorName: string, dims: number[], scale: number): Tensor => {
    const count = dims.reduce((a, b) => a * b, 1);
    const chunk = new Float32Array(Math.min(count, 1 << 22));
    const start = offset;
    for (let done = 0; done < count; done += chunk.length) {
      const n = Math.min(chunk.length, count - done);
      for (let i = 0; i < n; i++) {
        // xorshift32, mapped to [-scale, scale).
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        chunk[i] = ((state >>> 0) / 4294967296 - 0.5) * 2 * scale;
      }
      const bytes = new Uint8Array(chunk.buffer, 0, n * 4);
      let written = 0;
      while (written < bytes.byteLength) written += fs.writeSync(fd, bytes, written, bytes.byteLength - written, offset + written);
      offset += bytes.byteLength;
    }
    // Page-aligned, as onnxruntime prefers for mapping.
    offset = Math.ceil(offset / 4096) * 4096;
    return Tensor.external(tensorName, DataType.FLOAT, dims, { location: dataName, offset: start }, source);
  };
  const ones = (tensorName: string, n: number) => Tensor.fromArray(tensorName, DataType.FLOAT, [n], new Float32Array(n).fill(1));
  const zeros = (tensorName: string, n: number) => Tensor.fromArray(tensorName, DataType.FLOAT, [n], new Float32Array(n));

  const { hidden: d, layers, vocabulary: v } = shape;
  const graph = new Graph('decoder');
  graph.inputs = [makeValueInfo('input_ids', { elemType: DataType.INT64, shape: ['batch', 'sequence'] })];
  graph.outputs = [makeValueInfo('logits', { elemType: DataType.FLOAT, shape: ['batch', 'sequence', v] })];
  const add = (opType: string, inputs: string[], output: string, attributes = [] as ReturnType<typeof attr.int>[]) => {
    graph.nodes.push(new Node({ opType, inputs, outputs: [output], name: output, attributes }));
    return output;
  };
  const init = (tensor: Tensor) => {
    graph.initializers.push(tensor);
    return tensor.name;
  };
  let x = add('Gather', [init(weight('embed_tokens.weight', [v, d], 1)), 'input_ids'], 'embed');
  const norm = (prefix: string, input: string) =>
    add('LayerNormalization', [input, init(ones(`${prefix}.weight`, d)), init(zeros(`${prefix}.bias`, d))], `${prefix}_out`, [attr.int('axis', -1)]);
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}`;
    const h = norm(`${p}.input_layernorm`, x);
    const q = add('MatMul', [h, init(weight(`${p}.self_attn.q_proj.weight`, [d, d], 1 / Math.sqrt(d)))], `${p}.q`);
    const k = add('MatMul', [h, init(weight(`${p}.self_attn.k_proj.weight`, [d, d], 1 / Math.sqrt(d)))], `${p}.k`);
    const vv = add('MatMul', [h, init(weight(`${p}.self_attn.v_proj.weight`, [d, d], 1 / Math.sqrt(d)))], `${p}.v`);
    // Attention's mixing across positions is left out; q, k and v still feed the output projection.
    const mixed = add('Add', [add('Add', [q, k], `${p}.qk`), vv], `${p}.qkv`);
    const o = add('MatMul', [mixed, init(weight(`${p}.self_attn.o_proj.weight`, [d, d], 1 / Math.sqrt(3 * d)))], `${p}.o`);
    x = add('Add', [x, o], `${p}.attn_residual`);
    const h2 = norm(`${p}.post_attention_layernorm`, x);
    const up = add('MatMul', [h2, init(weight(`${p}.mlp.up_proj.weight`, [d, 4 * d], 1 / Math.sqrt(d)))], `${p}.up`);
    const act = add('Relu', [up], `${p}.act`);
    const down = add('MatMul', [act, init(weight(`${p}.mlp.down_proj.weight`, [4 * d, d], 1 / Math.sqrt(4 * d)))], `${p}.down`);
    x = add('Add', [x, down], `${p}.mlp_residual`);
  }
  const final = norm('norm', x);
  add('MatMul', [final, init(weight('lm_head.weight', [d, v], 1 / Math.sqrt(d)))], 'logits');
  fs.closeSync(fd);
  const model = new Model(graph, { irVersion: 8, opsetImports: [{ domain: '', version: 17 }] });
  // The data file is in place: only the protobuf is written, referring to it (a save would copy
  // every weight to a fresh data file: twice the disk, 56 GB for the 28 GB model).
  const chunks = writeModelChunks(model, {
    externalData: {
      defaultLocation: dataName,
      // LayerNorm scales and biases (a few KB each) stay inside the protobuf.
      threshold: 1 << 20,
      reference: (tensor) => tensor.external,
      sink: {
        append: () => {
          throw new Error('every weight of the generated decoder is in its data file already');
        },
        size: () => 0,
      },
    },
  });
  fs.writeFileSync(file, Buffer.concat(chunks));
  return file;
}
