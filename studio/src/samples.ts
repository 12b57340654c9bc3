// The samples a comparison runs on, from what the user dropped: images (decoded and resized in the
// worker with createImageBitmap and an OffscreenCanvas), one .npy or .npz, or, when nothing was
// given, generated inputs (with the report's warning that they are a weak stand-in).
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { memoryByteSource } from '../../src/eval/byte-source.js';
import { modelSignature, type ModelValue } from '../../src/eval/match-inputs.js';
import { npySamples, npzSamples } from '../../src/eval/sample-arrays.js';
import { generatedSamples } from '../../src/eval/sample-generate.js';
import type { Sample, SampleSource } from '../../src/eval/samples.js';
import type { DroppedFile, ImageScaling } from './protocol.js';
import { readWav } from './wav.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp'];
export const ARRAY_EXTENSIONS = ['.npy', '.npz'];
export const AUDIO_EXTENSIONS = ['.wav'];
/** Every kind of sample file the page takes. */
export const SAMPLE_EXTENSIONS = [...IMAGE_EXTENSIONS, ...ARRAY_EXTENSIONS, ...AUDIO_EXTENSIONS];

/** Generated inputs: a symbolic first axis is a batch of one; other symbolic dims get this until the user says. */
const DEFAULT_SYMBOLIC_DIM = 64;

/**
 * The symbolic dims of the model's required inputs, keyed as generatedSamples reads them (the
 * dim's name, or `input[axis]` for an unnamed one), with a first guess at their sizes.
 */
export function symbolicDims(model: Model): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const input of modelSignature(model).inputs.filter((i) => !i.optional)) {
    (input.shape ?? []).forEach((dim, axis) => {
      if (typeof dim === 'number' && dim >= 0) return;
      const key = typeof dim === 'string' && dim !== '' ? dim : `${input.name}[${axis}]`;
      dims[key] ??= axis === 0 ? 1 : DEFAULT_SYMBOLIC_DIM;
    });
  }
  return dims;
}

export function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot).toLowerCase();
}

/** Images fill symbolic height and width with their own size; `dims` sizes the symbolic dims of generated inputs. */
export async function sampleSourceFor(model: Model, files: readonly DroppedFile[], scaling: ImageScaling, generated: { count: number; dims: Record<string, number> }): Promise<SampleSource> {
  const inputs = modelSignature(model).inputs.filter((i) => !i.optional);
  const arrays = files.filter((f) => ARRAY_EXTENSIONS.includes(extensionOf(f.name)));
  const images = files.filter((f) => IMAGE_EXTENSIONS.includes(extensionOf(f.name)));
  const audio = files.filter((f) => AUDIO_EXTENSIONS.includes(extensionOf(f.name)));
  if ([arrays, images, audio].filter((kind) => kind.length > 0).length > 1) throw new Error(`${files[0].name}: give one kind of samples (images, audio, or one .npy/.npz), not several`);
  if (arrays.length > 1) throw new Error(`${arrays[1].name}: give one .npy or .npz (an .npz holds one array per input); got ${arrays.map((f) => f.name).join(', ')}`);
  if (arrays.length === 1) {
    const file = arrays[0];
    const source = memoryByteSource(new Uint8Array(file.bytes));
    return extensionOf(file.name) === '.npz' ? npzSamples(source, file.name, inputs) : npySamples(source, file.name, inputs);
  }
  if (images.length > 0) return imageSamples(inputs, images, scaling);
  if (audio.length > 0) return audioSamples(inputs, audio);
  const range: [number, number] = scaling === 'minus-one-to-one' ? [-1, 1] : scaling === 'zero-to-255' ? [0, 255] : [0, 1];
  return generatedSamples(inputs, { count: generated.count, dims: { ...symbolicDims(model), ...generated.dims }, range });
}

/** One sample per image, for a model with one float image input [N, C, H, W] or [N, H, W, C] (C 1 or 3). */
async function imageSamples(inputs: readonly ModelValue[], files: readonly DroppedFile[], scaling: ImageScaling): Promise<SampleSource> {
  if (inputs.length !== 1) throw new Error(`${files[0].name}: images feed a model with one input; this one has ${inputs.length} (${inputs.map((i) => i.name).join(', ')}): use an .npz`);
  const input = inputs[0];
  const shape = input.shape ?? [];
  if (input.elemType !== DataType.FLOAT || shape.length !== 4) throw new Error(`${files[0].name}: images feed a float32 [N, C, H, W] input; '${input.name}' is not one`);
  const channelsLast = shape[3] === 1 || shape[3] === 3;
  const [hAxis, wAxis, cAxis] = channelsLast ? [1, 2, 3] : [2, 3, 1];
  const channels = typeof shape[cAxis] === 'number' ? (shape[cAxis] as number) : 3;
  if (channels !== 1 && channels !== 3) throw new Error(`${files[0].name}: input '${input.name}' has ${channels} channels; images give 1 or 3`);
  const tensors: Tensor[] = [];
  for (const file of files) {
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(new Blob([file.bytes]));
    } catch {
      throw new Error(`${file.name}: not an image this browser can decode`);
    }
    const size = (axis: number, own: number) => (typeof shape[axis] === 'number' && (shape[axis] as number) > 0 ? (shape[axis] as number) : own);
    const height = size(hAxis, bitmap.height);
    const width = size(wAxis, bitmap.width);
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d') as OffscreenCanvasRenderingContext2D;
    context.drawImage(bitmap, 0, 0, width, height);
    bitmap.close();
    const rgba = context.getImageData(0, 0, width, height).data;
    const data = new Float32Array(channels * height * width);
    const plane = height * width;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++) {
        const value = channels === 1 ? (rgba[4 * p] * 0.299 + rgba[4 * p + 1] * 0.587 + rgba[4 * p + 2] * 0.114) : rgba[4 * p + c];
        data[channelsLast ? p * channels + c : c * plane + p] = scale(value, c, scaling);
      }
    }
    const dims = channelsLast ? [1, height, width, channels] : [1, channels, height, width];
    tensors.push(Tensor.fromArray(input.name, DataType.FLOAT, dims, data));
  }
  const description = `${files.length} image${files.length === 1 ? '' : 's'} (${files.map((f) => f.name).join(', ')}), scaled ${scaling}`;
  return {
    inputs: [input.name],
    count: tensors.length,
    description,
    async *[Symbol.asyncIterator](): AsyncGenerator<Sample> {
      for (const [index, tensor] of tensors.entries()) yield { index, where: files[index].name, inputs: { [input.name]: tensor } };
    },
  };
}

/**
 * Frames of WAV files for a model with one float input whose last axis is time ([T], [N, T] or
 * [N, 1, T]): frames of T samples when T is fixed (a clip shorter than one frame is zero-padded),
 * the whole clip as one sample when it is symbolic. Leading axes are 1.
 */
function audioSamples(inputs: readonly ModelValue[], files: readonly DroppedFile[]): SampleSource {
  const first = files[0].name;
  if (inputs.length !== 1) throw new Error(`${first}: audio feeds a model with one input; this one has ${inputs.length} (${inputs.map((i) => i.name).join(', ')}): use an .npz`);
  const input = inputs[0];
  const shape = input.shape ?? [];
  if (input.elemType !== DataType.FLOAT || shape.length < 1 || shape.length > 3) throw new Error(`${first}: audio feeds a float32 [T], [N, T] or [N, 1, T] input; '${input.name}' is not one`);
  const last = shape[shape.length - 1];
  const frame = typeof last === 'number' && last > 0 ? last : undefined;
  const lead = shape.slice(0, -1).map(() => 1);
  const samples: { where: string; tensor: Tensor }[] = [];
  const rates = new Set<number>();
  for (const file of files) {
    const wav = readWav(file.bytes, file.name);
    rates.add(wav.rate);
    const length = frame ?? wav.samples.length;
    const count = Math.max(1, Math.floor(wav.samples.length / length));
    for (let k = 0; k < count; k++) {
      const data = new Float32Array(length);
      data.set(wav.samples.subarray(k * length, (k + 1) * length));
      samples.push({ where: count === 1 ? file.name : `${file.name} frame ${k}`, tensor: Tensor.fromArray(input.name, DataType.FLOAT, [...lead, length], data) });
    }
  }
  const description = `${files.length} WAV file${files.length === 1 ? '' : 's'} at ${[...rates].join('/')} Hz (not resampled), ${samples.length} frame${samples.length === 1 ? '' : 's'}${frame === undefined ? '' : ` of ${frame} samples`}`;
  return {
    inputs: [input.name],
    count: samples.length,
    description,
    async *[Symbol.asyncIterator](): AsyncGenerator<Sample> {
      for (const [index, { where, tensor }] of samples.entries()) yield { index, where, inputs: { [input.name]: tensor } };
    },
  };
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function scale(value: number, channel: number, scaling: ImageScaling): number {
  switch (scaling) {
    case 'zero-to-one':
      return value / 255;
    case 'minus-one-to-one':
      return value / 127.5 - 1;
    case 'imagenet':
      return (value / 255 - IMAGENET_MEAN[channel % 3]) / IMAGENET_STD[channel % 3];
    case 'zero-to-255':
      return value;
  }
}
