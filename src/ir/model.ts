// A whole model: the main graph plus what ModelProto carries around it.
import type { FunctionProto, ModelProto, TrainingInfoProto } from '../onnx/onnx_pb.js';
import type { Graph } from './graph.js';

export interface OpsetImport {
  /** '' is the default ai.onnx domain. */
  domain: string;
  version: number;
}

export interface MetadataEntry {
  key: string;
  value: string;
}

export class Model {
  graph: Graph;
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName = '';
  producerVersion = '';
  domain = '';
  modelVersion = 0n;
  docString = '';
  metadata: MetadataEntry[] = [];
  /** Model-local functions, kept as decoded (their bodies are not rewritten by passes). */
  functions: FunctionProto[] = [];
  trainingInfo: TrainingInfoProto[] = [];
  /** The decoded proto, kept for fields shrink does not model. */
  proto: ModelProto | undefined;

  constructor(graph: Graph, init: { irVersion?: number; opsetImports?: OpsetImport[] } = {}) {
    this.graph = graph;
    this.irVersion = init.irVersion ?? 8;
    this.opsetImports = init.opsetImports ?? [{ domain: '', version: 17 }];
  }

  /**
   * An independent copy to change: passes run on the copy leave this model as it was. Weights
   * are shared, not copied (tensor bytes are never written in place), so cloning is cheap even
   * for models whose weights live in external files.
   */
  clone(): Model {
    const copy = new Model(this.graph.clone(), { irVersion: this.irVersion, opsetImports: this.opsetImports.map((o) => ({ ...o })) });
    copy.producerName = this.producerName;
    copy.producerVersion = this.producerVersion;
    copy.domain = this.domain;
    copy.modelVersion = this.modelVersion;
    copy.docString = this.docString;
    copy.metadata = this.metadata.map((e) => ({ ...e }));
    copy.functions = [...this.functions];
    copy.trainingInfo = [...this.trainingInfo];
    copy.proto = this.proto;
    return copy;
  }

  /** Opset version imported for `domain` ('' or 'ai.onnx' for the standard ops). */
  opset(domain = ''): number | undefined {
    const wanted = domain === 'ai.onnx' ? '' : domain;
    return this.opsetImports.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === wanted)?.version;
  }
}
