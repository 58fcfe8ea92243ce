/** What the HTTP layer needs from the daemon, as narrow interfaces. */
import type { ServerConfig } from "../config/types.js";
import type { KeyspaceRegistry } from "../keyspaces.js";
import type { AuditLog } from "../store/adapter.js";
import type { Logger } from "../log.js";
import type { StatusHistory } from "../ui/history.js";
import type { WarmProgress, WarmRequest } from "../warm/warming.js";
import type { Authorizer } from "./auth.js";

export type Op =
  | "get"
  | "put"
  | "delete"
  | "mget"
  | "mset"
  | "flush"
  | "check"
  | "keyspaces"
  | "deadletters"
  | "warm"
  | "audit"
  | "ops";

/** The front end a request came in by: the HTTP protocol or the Redis protocol (RESP). */
export type Protocol = "http" | "resp";

export interface RequestObserver {
  /**
   * one call per answered request; keyspace is "" for routes without one, "(unknown)" for unknown names;
   * over RESP, status is the HTTP status the same outcome has
   */
  request(keyspace: string, op: Op, status: number, seconds: number, protocol?: Protocol): void;
}

export interface Health {
  /** "up" or "down" per dependency */
  readiness(): Promise<Record<string, "up" | "down">>;
  /** circuit breaker state per backend: closed, half-open or open */
  breakers?(): Record<string, string>;
  exposition(): Promise<{ contentType: string; body: string }>;
  /** hits / (hits + misses) since start, null before the first read */
  hitRatio(keyspace: string): number | null;
}

export interface CheckRunner {
  run(keyspace: string, options: { sample?: number; full?: boolean }): Promise<Record<string, unknown>>;
}

export interface ProxyContext {
  server: ServerConfig;
  keyspaces: KeyspaceRegistry;
  auth: Authorizer;
  observer: RequestObserver;
  health: Health;
  checker?: CheckRunner;
  /** the last minutes per keyspace, for the status page */
  status?: StatusHistory;
  /** cache warming: start a run, see its progress */
  warm?: {
    start(keyspace: string, request?: WarmRequest): WarmProgress;
    progress(keyspace: string): WarmProgress | undefined;
  };
  /** reads the keyspaces' audit logs */
  audit?: Pick<AuditLog, "read">;
  log: Logger;
  /** log every request at info (config log.access); otherwise only failures, the rest at debug */
  accessLog: boolean;
}
