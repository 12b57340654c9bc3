// `--queue redis://[:password@]host[:port][/db]` as BullMQ's connection options, with one-line
// errors for what is not such an address.
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';

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
    // BullMQ's blocking commands need this: a command waits while Redis is away and runs when it is back.
    maxRetriesPerRequest: null,
    // Reconnect at most 2 s apart however long Redis was away (BullMQ's default backs off to 20 s), so
    // workers and dispatchers resume soon after a restart.
    retryStrategy: (attempt: number) => Math.min(250 * attempt, 2000),
  };
}

/**
 * Connects once, without retrying, and fails in one line when nobody answers. BullMQ's own
 * connections retry for ever (a Redis restart must not end a search or stop a worker), so an
 * address with no Redis behind it would otherwise wait for ever.
 */
export async function reachRedis(url: string, ms = 5000): Promise<void> {
  const client = new Redis({ ...queueConnection(url), lazyConnect: true, retryStrategy: () => null, connectTimeout: ms, maxRetriesPerRequest: 0 });
  let cause: Error | undefined;
  client.on('error', (error: Error) => {
    cause ??= error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new Error(`--queue ${url}: cannot reach Redis (${(cause ?? (error as Error)).message})`);
  } finally {
    client.disconnect();
  }
}
