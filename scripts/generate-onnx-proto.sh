#!/usr/bin/env bash
# Regenerates src/onnx/onnx_pb.ts from proto/onnx.proto. Only needed after editing the schema:
# the generated file is committed, so installs and CI never run this.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH" npx buf generate
