// Solved blocks kept until the writer packs them, with their codes packed as the file will hold
// them (two 4-bit codes a byte): GPTQ on a 7B model holds every layer's blocks at once, 6.5 GB as
// one byte per code, 3.3 GB packed. `get` unpacks one weight's codes for the writer.
import { packRows, unpackRows } from '../../kernels/pack.js';
import type { QuantizedBlocks } from '../../kernels/quantize-blocks.js';

type Packed = Omit<QuantizedBlocks, 'codes'> & { packed: Uint8Array };

export class PackedSolvedBlocks implements ReadonlyMap<string, QuantizedBlocks> {
  private readonly entries_ = new Map<string, Packed>();

  set(name: string, blocks: QuantizedBlocks): void {
    const { codes, ...rest } = blocks;
    this.entries_.set(name, { ...rest, packed: packRows(codes, blocks.rows, blocks.cols, blocks.bits) });
  }

  get(name: string): QuantizedBlocks | undefined {
    const entry = this.entries_.get(name);
    if (entry === undefined) return undefined;
    const { packed, ...rest } = entry;
    return { ...rest, codes: Uint8Array.from(unpackRows(packed, entry.rows, entry.cols, entry.bits, false)) };
  }

  has(name: string): boolean {
    return this.entries_.has(name);
  }

  get size(): number {
    return this.entries_.size;
  }

  *keys(): MapIterator<string> {
    yield* this.entries_.keys();
  }

  *values(): MapIterator<QuantizedBlocks> {
    for (const name of this.entries_.keys()) yield this.get(name) as QuantizedBlocks;
  }

  *entries(): MapIterator<[string, QuantizedBlocks]> {
    for (const name of this.entries_.keys()) yield [name, this.get(name) as QuantizedBlocks];
  }

  [Symbol.iterator](): MapIterator<[string, QuantizedBlocks]> {
    return this.entries();
  }

  forEach(callback: (value: QuantizedBlocks, key: string, map: ReadonlyMap<string, QuantizedBlocks>) => void): void {
    for (const [name, blocks] of this.entries()) callback(blocks, name, this);
  }
}
