/**
 * Audit retention: once a minute, each keyspace with `audit.retention` has its records older than that
 * deleted in batches of 1000 (at most 100 batches a round, a short pause between them), by one query per
 * batch that skips rows another daemon is deleting. Off the write path: the writes never wait for it.
 */
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { AuditLog } from "../store/adapter.js";

export interface RetentionOptions {
  keyspaces: () => KeyspaceConfig[];
  audit: Pick<AuditLog, "prune">;
  log: Logger;
  /** how often a round runs (tests: short) */
  everyMs?: number;
  batch?: number;
}

const MAX_BATCHES = 100;
const PAUSE_MS = 20;

export class AuditRetention {
  private timer?: NodeJS.Timeout;
  private round?: Promise<number>;
  private stopped = false;

  constructor(private readonly o: RetentionOptions) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => {
      this.round ??= this.prune().finally(() => (this.round = undefined));
    }, this.o.everyMs ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.round;
  }

  /** One round over every keyspace with a retention; how many records went. */
  async prune(): Promise<number> {
    const batch = this.o.batch ?? 1000;
    let total = 0;
    for (const ks of this.o.keyspaces()) {
      const retention = ks.audit?.retentionMs;
      if (!ks.audit || retention === undefined) continue;
      try {
        for (let i = 0; i < MAX_BATCHES && !this.stopped; i++) {
          const n = await this.o.audit.prune(ks.audit.table, ks.name, retention, batch);
          total += n;
          if (n < batch) break;
          await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
        }
      } catch (err) {
        this.o.log.warn(
          { keyspace: ks.name, err: String(err) },
          "audit retention: pruning failed; next round retries",
        );
      }
    }
    if (total > 0) this.o.log.info({ records: total }, "audit retention: old records deleted");
    return total;
  }
}
