// `--queue redis://[:password@]host[:port][/db]` as BullMQ's connection options, with one-line
// errors for what is not such an address.
import type { ConnectionOptions } from 'bullmq';

export function queueConnection(url: string): ConnectionOptions & { host: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--queue: '${url}' is not a URL; give redis://HOST:PORT (e.g. redis://127.0.0.1:6379)`);
  }
  if (parsed.protocol !== 'redis:') throw new Error(`--queue: '${url}' is not a redis:// address (shrink's jobs go through BullMQ on Redis)`);
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const db = parsed.pathname === '' || parsed.pathname === '/' ? 0 : Number(parsed.pathname.slice(1));
  if (!Number.isSafeInteger(db) || db < 0) throw new Error(`--queue: '${url}': the database '${parsed.pathname.slice(1)}' is not a whole number`);
  return {
    host: parsed.hostname === '' ? '127.0.0.1' : parsed.hostname,
    port,
    db,
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    // BullMQ's blocking commands need this; the dispatcher fails fast instead of queueing commands while Redis is away.
    maxRetriesPerRequest: null,
  };
}
