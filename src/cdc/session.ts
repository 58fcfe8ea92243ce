/**
 * One replication connection's life, for the daemon holding the lease: messages are received as they
 * arrive and applied in order, a batch of committed transactions at a time; the confirmed position moves
 * past a transaction only once its invalidations are applied. Keepalives that ask for an answer get one
 * at once (with what is applied), and a status update goes out every statusIntervalMs whatever happens.
 */
import type { CdcConfig, KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import { ChangeCollector, type Transaction } from "./changes.js";
import type { Invalidator } from "./invalidator.js";
import { ReplicationStream } from "./stream.js";
import { readPgoutput, type Lsn, type StreamMessage } from "./wire.js";

export interface SessionContext {
  config: CdcConfig;
  storeUrl: string;
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  timing: { statusIntervalMs: number; confirmDelayMs: number };
  invalidator: Invalidator;
  stopped: () => boolean;
  /** the session has applied everything committed before it began */
  caughtUp: () => void;
}

/** Messages queued past this pause the socket; the server waits until the queue is drained. */
const HIGH_WATER = 20_000;
/** Until caught up, a keepalive is asked for this often: it says how far the server has sent. */
const CATCH_UP_PROBE_MS = 100;

/** One replication connection's life: receive, apply in order, confirm. */
export class Session {
  readonly collector: ChangeCollector;
  private stream?: ReplicationStream;
  private readonly queue: StreamMessage[] = [];
  private draining?: Promise<void>;
  private paused = false;
  private over = false;
  private ending?: (err?: Error) => void;
  /** everything up to here is applied */
  private flushable: Lsn;
  private readonly target: Lsn;
  private confirmTimer?: NodeJS.Timeout;
  private statusTimer?: NodeJS.Timeout;
  private probeTimer?: NodeJS.Timeout;

  constructor(
    private readonly c: SessionContext,
    /** target: the WAL position when the session began (reading up to it is catching up); confirmed: the slot's */
    positions: { target: Lsn; confirmed: Lsn },
  ) {
    this.target = positions.target;
    this.flushable = positions.confirmed;
    const { log } = c;
    this.collector = new ChangeCollector(c.keyspaces(), {
      unversionedDelete: (table) =>
        log.warn(
          { table },
          "cdc: a delete came without the deleted row's version; the key is not cached again until its tombstone expires (REPLICA IDENTITY FULL or a delete trigger fixes it: docs/cdc.md)",
        ),
      unkeyed: (table, keyspace) =>
        log.warn(
          { table, keyspace },
          "cdc: a change did not name its key; the keyspace's entries are dropped",
        ),
    });
  }

  async run(): Promise<void> {
    const { log, timing, telemetry, config } = this.c;
    const ended = new Promise<void>((resolve, reject) => {
      this.ending = (err) => (err ? reject(err) : resolve());
    });
    ended.catch(() => {});
    this.stream = await ReplicationStream.open({
      url: this.c.storeUrl,
      slot: config.slot,
      publication: config.publication,
      log,
      onMessage: (m) => this.receive(m),
    });
    telemetry.emit({ type: "cdc_reader", active: true });
    log.info({ slot: config.slot }, "cdc: reading the replication slot");
    this.statusTimer = setInterval(() => this.stream?.sendStatus(this.flushable), timing.statusIntervalMs);
    // Until caught up, ask for a keepalive often: it says how far the server has sent.
    this.probeTimer = setInterval(() => this.stream?.sendStatus(this.flushable, true), CATCH_UP_PROBE_MS);
    this.stream.sendStatus(this.flushable, true);
    try {
      await Promise.race([this.stream.ended.then(() => this.ending?.()), ended]);
    } finally {
      await this.close();
      telemetry.emit({ type: "cdc_reader", active: false });
    }
  }

  /** Ends the session (stop, a lost lease, an invalidated slot). */
  async end(err?: Error): Promise<void> {
    this.ending?.(err);
    await this.draining;
  }

  private async close(): Promise<void> {
    this.over = true;
    clearInterval(this.statusTimer);
    clearInterval(this.probeTimer);
    clearTimeout(this.confirmTimer);
    await this.draining;
    // Whatever was applied is confirmed on the way out.
    this.stream?.sendStatus(this.flushable);
    await this.stream?.close();
  }

  private receive(m: StreamMessage): void {
    if (this.over) return;
    if (m.tag === "keepalive" && m.replyRequested) this.stream?.sendStatus(this.flushable);
    this.queue.push(m);
    if (!this.paused && this.queue.length > HIGH_WATER) {
      this.paused = true;
      this.stream?.pause();
    }
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.over) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.over) {
      const messages = this.queue.splice(0);
      if (this.paused) {
        this.paused = false;
        this.stream?.resume();
      }
      const batch: Transaction[] = [];
      let end: Lsn = 0n;
      for (const m of messages) {
        if (m.tag === "keepalive") {
          // Between transactions, everything the server has sent is in hand.
          if (!this.collector.inTransaction && m.walEnd > end) end = m.walEnd;
          continue;
        }
        const t = this.collector.feed(readPgoutput(m.body));
        if (t) {
          batch.push(t);
          if (t.endLsn > end) end = t.endLsn;
        }
      }
      if (batch.length > 0 && !(await this.apply(batch))) break;
      const now = Date.now();
      for (const t of batch)
        this.c.telemetry.emit({ type: "cdc_lag", seconds: Math.max(0, now - t.commitMs) / 1000 });
      if (end > this.flushable) {
        this.flushable = end;
        this.scheduleConfirm();
      }
      if (this.flushable >= this.target && this.probeTimer) {
        clearInterval(this.probeTimer);
        this.probeTimer = undefined;
        this.c.caughtUp();
      }
    }
  }

  /** Applies until it works or the session is over (then the next reader applies it again). */
  private async apply(batch: Transaction[]): Promise<boolean> {
    const { invalidator, log, stopped } = this.c;
    for (let attempt = 0; ; attempt++) {
      try {
        await invalidator.apply(batch);
        return true;
      } catch (err) {
        if (this.over || stopped()) return false;
        if (attempt % 20 === 0) {
          log.warn(
            { err: String(err), transactions: batch.length },
            "cdc: applying invalidations failed; retrying",
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(1_000, 20 * 2 ** Math.min(attempt, 6))));
      }
    }
  }

  private scheduleConfirm(): void {
    if (this.confirmTimer) return;
    this.confirmTimer = setTimeout(() => {
      this.confirmTimer = undefined;
      this.stream?.sendStatus(this.flushable);
    }, this.c.timing.confirmDelayMs);
  }
}
