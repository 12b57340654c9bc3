#!/usr/bin/env bash
# Synthesizes the speech fixture of the VAD tests: a few seconds of 16 kHz mono audio in which
# spoken phrases (espeak-ng, English and Mandarin) alternate with pauses of faint noise, so a
# voice activity detector has speech to find and silence to reject. The output is committed, so
# tests and CI never need espeak-ng or sox:
#
#   test/fixtures/speech/speech-16k.npy   float32 [samples], 16 kHz, in [-1, 1]
#   test/fixtures/speech/speech-16k.json  where speech and silence are (sample offsets and seconds)
#
# Usage: apt-get install espeak-ng sox && bash scripts/make-speech.sh
set -euo pipefail

out_dir=test/fixtures/speech
rate=16000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_dir"

# Each segment: kind, espeak voice (speech) or seconds (silence), text.
segments=(
  "silence|1.0|"
  "speech|en-us|The quick brown fox jumps over the lazy dog."
  "silence|1.5|"
  "speech|en-gb|Please keep the door closed."
  "silence|1.2|"
  "speech|cmn|今天天气很好。"
  "silence|1.0|"
)

parts=()
json_segments=()
offset=0
for i in "${!segments[@]}"; do
  IFS='|' read -r kind arg text <<<"${segments[$i]}"
  part="$work/part_$i.wav"
  if [[ $kind == silence ]]; then
    # A quiet noise floor (about -54 dBFS) instead of digital zeros, as a real microphone gives.
    sox -R -n -r "$rate" -c 1 -b 16 "$part" synth "$arg" whitenoise vol 0.002
  else
    espeak-ng -v "$arg" -s 150 -w "$work/raw_$i.wav" "$text"
    # Resample, and trim espeak's own leading and trailing silence so the segment bounds are the voice's.
    sox -R "$work/raw_$i.wav" -r "$rate" -c 1 -b 16 "$part" \
      silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse norm -3
  fi
  samples=$(soxi -s "$part")
  end=$((offset + samples))
  json_segments+=("$(printf '  {"kind": "%s", "start": %d, "end": %d, "start_s": %.4f, "end_s": %.4f, "text": "%s"}' \
    "$kind" "$offset" "$end" "$(bc -l <<<"$offset / $rate")" "$(bc -l <<<"$end / $rate")" "$text")")
  parts+=("$part")
  offset=$end
done

# One raw little-endian float32 stream, then a .npy header in front of it (format 1.0: magic,
# version, header length, the dict padded with spaces to a multiple of 64 bytes, newline).
sox -R "${parts[@]}" -t raw -e floating-point -b 32 -L "$work/speech.f32"
count=$(($(stat -c %s "$work/speech.f32") / 4))
dict="{'descr': '<f4', 'fortran_order': False, 'shape': ($count,), }"
total=$(((10 + ${#dict} + 1 + 63) / 64 * 64))
header_len=$((total - 10))
{
  printf '\x93NUMPY\x01\x00'
  printf "\\x$(printf %02x $((header_len & 255)))\\x$(printf %02x $((header_len >> 8)))"
  printf '%-*s\n' $((header_len - 1)) "$dict"
  cat "$work/speech.f32"
} >"$out_dir/speech-16k.npy"

{
  printf '{\n "source": "scripts/make-speech.sh (espeak-ng, sox)",\n "sample_rate": %d,\n "samples": %d,\n "segments": [\n' "$rate" "$count"
  last=$((${#json_segments[@]} - 1))
  for i in "${!json_segments[@]}"; do
    if ((i < last)); then printf '%s,\n' "${json_segments[$i]}"; else printf '%s\n' "${json_segments[$i]}"; fi
  done
  printf ' ]\n}\n'
} >"$out_dir/speech-16k.json"

echo "$count samples ($(bc -l <<<"scale=2; $count / $rate") s) -> $out_dir/speech-16k.npy"
