/**
 * Change data capture: the daemon holding the lease streams the slot, turns each committed transaction
 * into invalidations and applies them through the cache adapter (and its subscribers); only then does
 * the slot's confirmed position move past the transaction (at least once: a reader that dies before
 * confirming leaves the transaction to the next one, and applying it twice is harmless). The other
 * daemons try the lease every `pollMs` and take over when the holder's session ends.
 *
 * A slot that is gone or invalidated means changes may have been missed: every keyspace's entries are
 * dropped, the loss is logged and counted, and a new slot is streamed from now on.
 */
import type { CacheAdapter } from "../cache/adapter.js";
import type { CdcConfig, KeyspaceConfig } from "../config/types.js";
import { CdcSetupError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import type { DropReason } from "./changes.js";
import { Invalidator, type InvalidationListener } from "./invalidator.js";
import { CdcLease } from "./lease.js";
import { cdcProblems } from "./server-checks.js";
import { checkMapped, dropSlot, ensurePublication, ensureSlot, installTriggers } from "./setup.js";
import { Session } from "./session.js";
import { parseLsn } from "./wire.js";

export interface CdcTiming {
  /** how often a daemon that does not read the slot tries the lease */
  pollMs: number;
  /** standby status updates while nothing else is sent (well under the server's wal_sender_timeout) */
  statusIntervalMs: number;
  /** an applied transaction is confirmed at most this much later (one update for many transactions) */
  confirmDelayMs: number;
  /** how often the slot's retained WAL is read */
  walPollMs: number;
  /** how long start-up waits for the slot to be read up to the current WAL position */
  catchUpMs: number;
  /** the second drop of a dropped keyspace, after fills that read the table before the change */
  redropDelayMs: number;
}

export interface CdcReaderOptions {
  config: CdcConfig;
  storeUrl: string;
  storeTimeoutMs: number;
  cacheTimeoutMs: number;
  cache: CacheAdapter;
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  timing?: Partial<CdcTiming>;
}

export class CdcReader {
  readonly timing: CdcTiming;
  private readonly invalidator: Invalidator;
  private readonly lease: CdcLease;
  private readonly log: Logger;
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private walTimer?: NodeJS.Timeout;
  /** whether this daemon saw the slot exist: its absence later means it was lost */
  private knownSlot = false;
  /** keyspaces to drop before the slot is read again (a lost slot), kept until the drop succeeds */
  private pendingDrops = new Map<string, DropReason>();
  private session?: Session;
  private startGate?: () => void;
  private lastError = "";
  private checked = false;

  constructor(private readonly o: CdcReaderOptions) {
    this.log = o.log.child({ component: "cdc" });
    this.timing = {
      pollMs: 1_000,
      statusIntervalMs: 10_000,
      confirmDelayMs: 200,
      walPollMs: 5_000,
      catchUpMs: 30_000,
      // a load that began before the change ends within the store's timeout (+1 s client-side), its
      // fill within the cache's
      redropDelayMs: o.storeTimeoutMs + 1_000 + o.cacheTimeoutMs + 1_000,
      ...o.timing,
    };
    this.invalidator = new Invalidator({
      cache: o.cache,
      keyspaces: o.keyspaces,
      telemetry: o.telemetry,
      log: this.log,
      redropDelayMs: this.timing.redropDelayMs,
    });
    this.lease = new CdcLease(o.storeUrl, o.config.slot, o.storeTimeoutMs, this.log);
    this.lease.onLost(() => void this.session?.end(new Error("the lease connection was lost")));
  }

  /** Whether this daemon reads the slot now. */
  get reading(): boolean {
    return this.session !== undefined;
  }

  /** Subscribes to every applied batch of invalidations (near caches); returns the unsubscribe function. */
  subscribe(listener: InvalidationListener): () => void {
    return this.invalidator.subscribe(listener);
  }

  /**
   * Checks the server, sets up the publication and the managed tables' trigger, and starts trying the
   * lease. A daemon that takes it now reads the slot up to the current WAL position before this returns
   * (at most `catchUpMs`), so nothing committed while no daemon read it is served from the cache.
   */
  async start(): Promise<void> {
    await this.check();
    await this.setup();
    this.walTimer = setInterval(() => void this.pollWal(), this.timing.walPollMs);
    this.walTimer.unref();
    void this.pollWal();
    const gate = new Promise<void>((resolve) => (this.startGate = resolve));
    const timer = setTimeout(() => {
      this.log.warn({ waitedMs: this.timing.catchUpMs }, "cdc: still catching up; serving meanwhile");
      this.openGate();
    }, this.timing.catchUpMs);
    this.loop = this.run();
    await gate;
    clearTimeout(timer);
  }

  /** Throws CdcSetupError naming every setting PostgreSQL lacks to stream changes. */
  async check(): Promise<void> {
    if (this.checked) return;
    const problems = await cdcProblems(this.lease, this.o.config);
    if (problems.length > 0) {
      await this.lease.close();
      throw new CdcSetupError(`store.cdc: PostgreSQL can not stream changes: ${problems.join("; ")}.`);
    }
    this.checked = true;
  }

  /** After a reload: the keyspaces' tables join the publication and get their trigger. */
  async sync(): Promise<void> {
    this.session?.collector.setKeyspaces(this.o.keyspaces());
    try {
      await this.setup();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "cdc: setting up the new keyspaces failed");
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.walTimer);
    this.wake?.();
    await this.session?.end();
    await this.loop;
    this.invalidator.stop();
    await this.lease.close();
  }

  private async setup(): Promise<void> {
    const keyspaces = this.o.keyspaces();
    for (const ks of keyspaces.filter((k) => k.mapped)) {
      for (const w of await checkMapped(this.lease, ks)) this.log.warn({ keyspace: ks.name }, `cdc: ${w}`);
    }
    const managed = [...new Set(keyspaces.filter((k) => !k.mapped).map((k) => k.table))];
    await installTriggers(this.lease, managed);
    await ensurePublication(this.lease, this.o.config.publication, [
      ...new Set(keyspaces.map((k) => k.table)),
    ]);
  }

  private openGate(): void {
    this.startGate?.();
    this.startGate = undefined;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        if (!(await this.lease.tryAcquire())) {
          this.openGate();
          await this.sleep(this.timing.pollMs);
          continue;
        }
        await this.readSlot();
        failures = 0;
      } catch (err) {
        this.openGate();
        if (this.stopped) break;
        failures++;
        const message = err instanceof Error ? err.message : String(err);
        if (message !== this.lastError)
          this.log.warn({ err: message }, "cdc: reading the slot failed; retrying");
        this.lastError = message;
        await this.sleep(Math.min(2_000, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  /** One session: the slot made ready, fenced and streamed until the stream or the lease ends. */
  private async readSlot(): Promise<void> {
    const slot = this.o.config.slot;
    let state = await ensureSlot(this.lease, slot);
    if (state === "lost") {
      this.slotLost("invalidated");
      await dropSlot(this.lease, slot);
      state = await ensureSlot(this.lease, slot);
    } else if (state === "created" && this.knownSlot) {
      this.slotLost("dropped");
    } else if (state === "created") {
      this.log.info({ slot }, "cdc: replication slot created; entries cached before it are dropped");
      this.dropAll("slot_created");
    }
    this.knownSlot = true;
    if (this.pendingDrops.size > 0) {
      const dropped = new Map(this.pendingDrops);
      await this.invalidator.apply([{ commitLsn: 0n, endLsn: 0n, commitMs: 0, keys: new Map(), dropped }]);
      for (const ks of dropped.keys()) this.pendingDrops.delete(ks);
    }
    await this.lease.fence();
    const at = await this.lease.query(
      `select pg_current_wal_lsn()::text as now, confirmed_flush_lsn::text as confirmed
       from pg_replication_slots where slot_name = $1`,
      [slot],
    );
    const positions = {
      target: parseLsn(String(at.rows[0]?.now ?? "0/0")),
      confirmed: parseLsn(String(at.rows[0]?.confirmed ?? "0/0")),
    };
    const session = new Session(
      {
        ...this.o,
        log: this.log,
        timing: this.timing,
        invalidator: this.invalidator,
        stopped: () => this.stopped,
        caughtUp: () => this.openGate(),
      },
      positions,
    );
    this.session = session;
    try {
      await session.run();
    } finally {
      this.session = undefined;
    }
  }

  private slotLost(reason: "dropped" | "invalidated"): void {
    this.log.error(
      { slot: this.o.config.slot, reason },
      "cdc: the replication slot was lost; changes made meanwhile are unknown, so every keyspace's cached entries are dropped",
    );
    this.o.telemetry.emit({ type: "cdc_slot_lost", reason });
    this.dropAll("slot_lost");
  }

  private dropAll(reason: DropReason): void {
    for (const ks of this.o.keyspaces()) this.pendingDrops.set(ks.name, reason);
  }

  private async pollWal(): Promise<void> {
    try {
      const r = await this.lease.query(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 as retained, wal_status
         from pg_replication_slots where slot_name = $1`,
        [this.o.config.slot],
      );
      const row = r.rows[0];
      if (!row) return;
      this.knownSlot = true;
      this.o.telemetry.emit({ type: "cdc_retained_wal", bytes: Math.max(0, Number(row.retained ?? 0)) });
      if (row.wal_status === "lost")
        await this.session?.end(new Error("the replication slot was invalidated"));
    } catch (err) {
      this.log.debug({ err: String(err) }, "cdc: reading the slot's retained WAL failed");
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
