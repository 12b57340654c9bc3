// Builds the studio page (studio/) into a folder of static files with relative paths, so it runs
// from `shrink studio` or from any static host. onnxruntime-web is not bundled: its module, its
// .wasm and its thread worker module are copied as they ship into ort/, where the worker imports
// them at run time (onnxruntime starts its threads from its own module's URL, which bundling breaks).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
/** The onnxruntime-web files the worker loads (the wasm build: CPU, SIMD, threads). */
export const ORT_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

function copyOnnxruntime(): Plugin {
  return {
    name: 'shrink-studio-onnxruntime',
    generateBundle() {
      // The package's entry for require sits in its dist/ folder, beside the files.
      const dist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
      for (const file of ORT_FILES) this.emitFile({ type: 'asset', fileName: `ort/${file}`, source: readFileSync(join(dist, file)) });
    },
  };
}

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  worker: { format: 'es' },
  build: {
    outDir: join(here, '../dist/studio'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    reportCompressedSize: false,
    rollupOptions: {
      // zod places /* @__PURE__ */ where Rollup cannot use it; harmless, and not ours to fix.
      onwarn(warning, warn) {
        if (warning.code !== 'INVALID_ANNOTATION') warn(warning);
      },
    },
  },
  plugins: [copyOnnxruntime()],
});
