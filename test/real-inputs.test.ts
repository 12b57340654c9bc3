// Real inputs for the quantization acceptance tests: text lines and a page rendered with
// ImageMagick for the PP-OCRv4 models, synthesized speech for Silero VAD (fixtures made by
// scripts/make-ocr-lines.ts and scripts/make-speech.sh, committed). Checks that the fixtures are
// sane (the float32 models read and detect them) and that float16 keeps what the models say:
// the greedy-CTC text of PP-OCRv4 rec, the text regions of det, Silero's per-frame speech
// probability. Static int8 adds its own check with the same helpers (readLines, sileroOnSpeech).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ctcAlphabet, decodeCtcGreedy } from '../src/eval/ctc.js';
import type { SileroVersion } from '../src/eval/silero.js';
import { float16Pass } from '../src/methods/quantize/fp16.js';
import { loadModel } from '../src/node/model-files.js';
import { writeModel } from '../src/onnx/model-io.js';
import { agreement, detInput, loadOcrFixtures, type OcrFixtures, readLines } from './helpers/ocr-lines.js';
import { DET, REC, VAD_LEGACY, VAD_V5, VAD_V6 } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';
import { loadSpeech, sileroOnSpeech, vadScores } from './helpers/speech.js';
import { textMaskIou } from '../src/eval/ocr-det.js';

/** The float16 model (default options: float16 weights, compute where ORT CPU has kernels). */
function float16Bytes(file: string): Uint8Array {
  const model = loadModel(file);
  float16Pass.run(model, {}, {});
  return writeModel(model);
}

test('greedy CTC: arg-max per step, repeats merged, a blank separates doubled characters, class count checked', () => {
  const alphabet = ctcAlphabet('a\nb\r\nc\n');
  assert.deepEqual(alphabet.characters, ['', 'a', 'b', 'c', ' ']);
  // Steps: a a _ a b b space c _ _  ->  "aab c"
  const steps = [1, 1, 0, 1, 2, 2, 4, 3, 0, 0];
  const probs = new Float32Array(steps.length * 5).fill(0.05);
  steps.forEach((c, t) => {
    probs[t * 5 + c] = 0.8;
  });
  const [line] = decodeCtcGreedy(probs, [1, steps.length, 5], alphabet);
  assert.equal(line.text, 'aab c');
  assert.deepEqual(line.indices, [1, 1, 2, 4, 3]);
  assert.ok(Math.abs(line.confidence - 0.8) < 1e-6);
  assert.throws(() => decodeCtcGreedy(probs, [1, 10, 5], ctcAlphabet('a\nb\nc', { useSpaceChar: false })), /5 classes but the alphabet has 4 \(blank \+ dictionary\)/);
});

let fixtures: OcrFixtures | undefined;
let fp32Texts: string[] | undefined;

test('PP-OCRv4 rec reads the rendered lines (float32, greedy CTC against the ground truth)', { timeout: 60_000 }, async () => {
  fixtures = await loadOcrFixtures();
  const { lines } = fixtures;
  assert.ok(lines.length >= 50, `${lines.length} lines`);
  assert.ok(lines.some((l) => /[\u4e00-\u9fff]/.test(l.text)) && lines.some((l) => /^[\x20-\x7e]+$/.test(l.text)), 'Chinese and ASCII lines');
  fp32Texts = await readLines(REC, lines);
  const truth = lines.map((l) => l.text);
  const rate = agreement(fp32Texts, truth);
  const wrong = lines.flatMap((l, i) => (fp32Texts?.[i] === l.text ? [] : [`'${l.text}' -> '${fp32Texts?.[i]}'`]));
  console.log(`# rec float32: ${(rate * 100).toFixed(1)}% of ${lines.length} lines exactly right; misread: ${wrong.join(', ')}`);
  // Not perfect (the model confuses l/I and the like), but a broken preprocessing or dictionary reads ~0%.
  assert.ok(rate >= 0.9, `float32 exact-match rate ${rate}`);
});

test('PP-OCRv4 rec in float16 keeps the greedy-CTC text of at least 95% of the lines', { timeout: 60_000 }, async () => {
  fixtures ??= await loadOcrFixtures();
  fp32Texts ??= await readLines(REC, fixtures.lines);
  const texts = await readLines(float16Bytes(REC), fixtures.lines);
  const same = agreement(texts, fp32Texts);
  const truth = agreement(texts, fixtures.lines.map((l) => l.text));
  const changed = texts.flatMap((t, i) => (t === fp32Texts?.[i] ? [] : [`'${fp32Texts?.[i]}' -> '${t}'`]));
  console.log(`# rec float16: same text as float32 on ${(same * 100).toFixed(1)}% of lines, ${(truth * 100).toFixed(1)}% right${changed.length > 0 ? `; changed: ${changed.join(', ')}` : ''}`);
  assert.ok(same >= 0.95, `float16 agrees with float32 on ${same} of the lines`);
});

/** Mean probability over the middle of each text box, and the largest probability far from any box. */
function detectionScores(map: Float32Array, page: OcrFixtures['page']): { inBoxes: number[]; background: number } {
  const inBoxes = page.boxes.map((b) => {
    let sum = 0;
    let count = 0;
    for (let y = b.y + Math.floor(b.h / 4); y < b.y + Math.ceil((3 * b.h) / 4); y++) {
      for (let x = b.x + 4; x < b.x + b.w - 4; x++) {
        sum += map[y * page.width + x];
        count++;
      }
    }
    return sum / count;
  });
  const margin = 12;
  let background = 0;
  for (let y = 0; y < page.height; y++) {
    for (let x = 0; x < page.width; x++) {
      const near = page.boxes.some((b) => x >= b.x - margin && x < b.x + b.w + margin && y >= b.y - margin && y < b.y + b.h + margin);
      if (!near) background = Math.max(background, map[y * page.width + x]);
    }
  }
  return { inBoxes, background };
}

test('PP-OCRv4 det finds the text of a rendered page, in float32 and float16', { timeout: 60_000 }, async () => {
  fixtures ??= await loadOcrFixtures();
  const { page } = fixtures;
  const input = detInput(page);
  const [fp32] = await runModel(DET, [input]);
  const [fp16] = await runModel(float16Bytes(DET), [input]);
  assert.deepEqual(fp32.dims, [1, 1, page.height, page.width]);
  const maps = { float32: fp32.data() as Float32Array, float16: fp16.data() as Float32Array };
  for (const [name, map] of Object.entries(maps)) {
    const { inBoxes, background } = detectionScores(map, page);
    console.log(`# det ${name}: mean probability in each text box ${inBoxes.map((v) => v.toFixed(3)).join(', ')}; largest away from text ${background.toFixed(4)}`);
    inBoxes.forEach((v, i) => assert.ok(v > 0.5, `${name}: box '${page.boxes[i].text}' mean probability ${v}`));
    assert.ok(background < 0.3, `${name}: probability ${background} away from the text`);
  }
  const iou = textMaskIou(maps.float32, maps.float16);
  console.log(`# det float16 vs float32: IoU of the text masks (p > 0.3) ${iou.toFixed(4)}`);
  assert.ok(iou > 0.98, `text mask IoU ${iou}`);
});

/** float16 may move Silero's per-frame probability by at most this much. */
const SILERO_TOLERANCE: Record<SileroVersion, number> = { v5: 0.02, v6: 0.02, legacy: 0.03 };

for (const [version, file] of [
  ['v5', VAD_V5],
  ['v6', VAD_V6],
  ['legacy', VAD_LEGACY],
] as const) {
  test(`Silero VAD ${version} tells speech from silence in the synthesized speech; float16 keeps its per-frame probabilities`, { timeout: 60_000 }, async () => {
    const speech = loadSpeech();
    const fp32 = await sileroOnSpeech(file, version);
    const fp16 = await sileroOnSpeech(float16Bytes(file), version);
    let worst = 0;
    for (let k = 0; k < fp32.length; k++) worst = Math.max(worst, Math.abs(fp32[k] - fp16[k]));
    const s32 = vadScores(fp32, speech);
    const s16 = vadScores(fp16, speech);
    console.log(
      `# Silero ${version}: ${fp32.length} frames; speech frames > 0.5: float32 ${(s32.speechHit * 100).toFixed(1)}%, float16 ${(s16.speechHit * 100).toFixed(1)}% of ${s32.speechFrames}; silence frames < 0.5: ${(s32.silenceHit * 100).toFixed(1)}%, ${(s16.silenceHit * 100).toFixed(1)}% of ${s32.silenceFrames}; float16 max |dp| ${worst.toFixed(4)}`,
    );
    for (const [name, s] of [
      ['float32', s32],
      ['float16', s16],
    ] as const) {
      // Synthetic speech has short gaps between words where a frame may dip below 0.5.
      assert.ok(s.speechHit >= 0.9, `${name}: ${s.speechHit} of speech frames above 0.5`);
      assert.ok(s.silenceHit >= 0.98, `${name}: ${s.silenceHit} of silence frames below 0.5`);
    }
    assert.ok(worst <= SILERO_TOLERANCE[version], `float16 moved a frame's probability by ${worst}`);
  });
}
