/** Structured JSON logs (pino). Values and tokens are never logged. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string = process.env.SIDECACHE_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service: "sidecache" } });
}

export const silentLogger: Logger = pino({ level: "silent" });
