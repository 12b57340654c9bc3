// A tiny static file server for browser tests: serves folders under URL prefixes on 127.0.0.1 at
// a random free port. Browser tests need real HTTP because Chromium refuses to fetch wasm and ES
// modules from file:// URLs, and onnxruntime-web streams its .wasm with instantiateStreaming,
// which insists on the application/wasm MIME type.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, resolve, sep } from 'node:path';

const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
};

export interface StaticServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Paths requested so far that were not found (helps explain a failing page). */
  readonly misses: readonly string[];
  close(): Promise<void>;
}

/**
 * Serves each folder in `mounts` under its URL prefix, e.g. `{ '/ort/': 'node_modules/onnxruntime-web/dist' }`.
 * Requests outside every mount, or escaping a folder with `..`, get 404.
 */
export async function startStaticServer(mounts: Readonly<Record<string, string>>): Promise<StaticServer> {
  const roots = Object.entries(mounts).map(([prefix, dir]) => ({
    prefix: prefix.endsWith('/') ? prefix : `${prefix}/`,
    dir: resolve(dir),
  }));
  const misses: string[] = [];

  const server: Server = createServer((request, response) => {
    const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    const file = locate(pathname);
    const notFound = (): void => {
      misses.push(pathname);
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${pathname}`);
    };
    if (file === undefined || (request.method !== 'GET' && request.method !== 'HEAD')) return notFound();
    stat(file).then(
      (info) => {
        if (!info.isFile()) return notFound();
        response.writeHead(200, {
          'content-type': MIME_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
          'content-length': info.size,
          'cache-control': 'no-store',
        });
        if (request.method === 'HEAD') return response.end();
        createReadStream(file).pipe(response);
      },
      () => notFound(),
    );
  });

  function locate(pathname: string): string | undefined {
    for (const { prefix, dir } of roots) {
      if (!pathname.startsWith(prefix)) continue;
      const file = resolve(dir, `.${sep}${pathname.slice(prefix.length)}`);
      // resolve() collapses '..'; anything that lands outside the mounted folder is refused.
      if (file.startsWith(dir + sep)) return file;
    }
    return undefined;
  }

  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    misses,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
