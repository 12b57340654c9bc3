// WAV files as samples (RIFF/WAVE: PCM 8/16/24/32-bit integers or 32/64-bit floats, channels
// averaged to mono). Read by hand because the Web Audio decoder does not exist in workers. The
// sample rate is reported, never converted: the user's recording must already be at the model's rate.

export interface Wav {
  rate: number;
  channels: number;
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
}

export function readWav(bytes: ArrayBuffer, where: string): Wav {
  const view = new DataView(bytes);
  const tag = (at: number) => String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3));
  if (bytes.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error(`${where}: not a WAV file (no RIFF/WAVE header)`);
  let format: { code: number; channels: number; rate: number; bits: number } | undefined;
  let data: { offset: number; size: number } | undefined;
  for (let at = 12; at + 8 <= bytes.byteLength; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ') {
      let code = view.getUint16(at + 8, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (code === 0xfffe && size >= 26) code = view.getUint16(at + 32, true);
      format = { code, channels: view.getUint16(at + 10, true), rate: view.getUint32(at + 12, true), bits: view.getUint16(at + 22, true) };
    } else if (id === 'data') {
      data = { offset: at + 8, size: Math.min(size, bytes.byteLength - at - 8) };
    }
    at += 8 + size + (size % 2);
  }
  if (format === undefined || data === undefined) throw new Error(`${where}: WAV file without a ${format === undefined ? "'fmt '" : "'data'"} chunk`);
  const { code, channels, bits } = format;
  const read = sampleReader(view, code, bits);
  if (read === undefined || channels < 1) throw new Error(`${where}: WAV format ${code} with ${bits} bits and ${channels} channels is not read (PCM 8/16/24/32-bit or float 32/64-bit)`);
  const step = bits / 8;
  const frames = Math.floor(data.size / (step * channels));
  const samples = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(data.offset + (f * channels + c) * step);
    samples[f] = sum / channels;
  }
  return { rate: format.rate, channels, samples };
}

function sampleReader(view: DataView, code: number, bits: number): ((at: number) => number) | undefined {
  if (code === 1 && bits === 8) return (at) => (view.getUint8(at) - 128) / 128;
  if (code === 1 && bits === 16) return (at) => view.getInt16(at, true) / 32768;
  if (code === 1 && bits === 24) return (at) => ((view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)) / 8388608);
  if (code === 1 && bits === 32) return (at) => view.getInt32(at, true) / 2147483648;
  if (code === 3 && bits === 32) return (at) => view.getFloat32(at, true);
  if (code === 3 && bits === 64) return (at) => view.getFloat64(at, true);
  return undefined;
}
