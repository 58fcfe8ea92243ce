/** Structured JSON logs (pino). Values and tokens are never logged. */
import { destination as pinoDestination, pino, type Logger } from "pino";

export type { Logger };

/**
 * Logs to stdout without blocking the request that logs: lines are written asynchronously (the access log
 * writes one per request, and a synchronous write per line costs the hit path a tenth of its throughput).
 * flushLogs() writes out what is buffered before the process exits.
 */
export function createLogger(level: string = process.env.SIDECACHE_LOG_LEVEL ?? "info"): Logger {
  const destination = pinoDestination({ dest: 1, sync: false });
  destinations.push(destination);
  return pino({ level, base: { service: "sidecache" } }, destination);
}

const destinations: { flushSync(): void }[] = [];

export function flushLogs(): void {
  for (const d of destinations) {
    try {
      d.flushSync();
    } catch {
      // nothing written yet, or stdout gone: nothing more to do
    }
  }
}

export const silentLogger: Logger = pino({ level: "silent" });
