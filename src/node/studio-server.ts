// The local server of `shrink studio`: the built page's files, read-only, on loopback by default.
// It sends the two headers that make the page cross-origin isolated (COOP same-origin, COEP
// require-corp), which is what gives onnxruntime-web SharedArrayBuffer and so its threads, and
// the MIME types browsers insist on (application/wasm for instantiateStreaming, JavaScript for
// .mjs modules). It serves files and nothing else: the page never sends a model anywhere.
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

export const STUDIO_MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.onnx': 'application/octet-stream',
};

/** Cross-origin isolation: without both, browsers give the page no SharedArrayBuffer (one thread). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

export interface StudioServerOptions {
  /** The built page (index.html, assets/, and ort/ unless `ortDir` is given). */
  dir: string;
  /**
   * Where the page's ort/ files come from when `dir` has no ort/ folder: onnxruntime-web's dist/
   * (the npm package ships the page without them; the peer dependency has them).
   */
  ortDir?: string;
  /** Default 127.0.0.1: the page is for this machine's user. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
}

export interface StudioServer {
  /** `http://127.0.0.1:PORT/`, with the trailing slash. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startStudioServer(options: StudioServerOptions): Promise<StudioServer> {
  const root = resolve(options.dir);
  const ortRoot = options.ortDir === undefined || existsSync(join(root, 'ort')) ? undefined : resolve(options.ortDir);
  const server: Server = createServer((request, response) => {
    const reply = (status: number, text: string) => response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...ISOLATION_HEADERS }).end(text);
    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'the studio serves files only');
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    } catch {
      return reply(400, 'bad path');
    }
    const [base, relative] = ortRoot !== undefined && pathname.startsWith('/ort/') ? [ortRoot, pathname.slice('/ort'.length)] : [root, pathname];
    const file = resolve(base, `.${sep}${relative.endsWith('/') ? `${relative}index.html` : relative}`);
    // resolve() collapses '..': anything outside the served folders is refused.
    if (!file.startsWith(base + sep)) return reply(404, `not found: ${pathname}`);
    stat(file).then(
      (info) => {
        if (!info.isFile()) return reply(404, `not found: ${pathname}`);
        response.writeHead(200, {
          'content-type': STUDIO_MIME_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
          'content-length': info.size,
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
          ...ISOLATION_HEADERS,
        });
        if (request.method === 'HEAD') return response.end();
        createReadStream(file).pipe(response);
      },
      () => reply(404, `not found: ${pathname}`),
    );
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => done());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
