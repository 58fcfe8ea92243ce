/**
 * Whether this daemon may serve cache entries, and the sweeps that earn it: the trust authority.
 *
 * A write whose cache update failed after its commit leaves a repair intent in PostgreSQL
 * (sidecache_cache_repairs) before it is acknowledged. Trust is a lease: a sweep that reads every intent,
 * applies it to the cache (a tombstone at its version) and hears the cache answer (its incarnation checked
 * too) makes the cache trusted for `leaseMs` from the moment the sweep began. Sweeps run every
 * `intervalMs` (a third of the lease), so a healthy daemon never lapses; one that can not reach
 * PostgreSQL or Redis, or that was frozen, lapses within the lease and reads PostgreSQL until a sweep
 * succeeds again. A writer that recorded an intent waits one lease (`outlast`) before acknowledging: by
 * then every daemon has either swept after the intent (and hides the key) or stopped trusting its cache,
 * whoever it is and whether or not it saw the cache fail. One failed cache call costs nothing beyond its
 * key (CacheRepairs); a dropped connection costs nothing: a reconnect to another server is caught by the
 * incarnation check.
 *
 * Daemons that share a cache and the same keyspaces do not all sweep: one of them, the holder of a lease
 * on the cache's trust board, does, and shows its progress in tickets (TrustBoard). Every other daemon
 * reads the board (one round trip) every `checkMs`: a read made at t that saw `issued` = n, followed by any
 * read that sees `swept` > n, proves that a whole sweep began after t, so the daemon trusts its cache until
 * t + lease, measured on its own clock exactly as if it had swept at t. When the holder stops (killed,
 * frozen, cut off) its lease runs out within a third of a trust lease and the next daemon to read the
 * board takes it. A daemon whose keyspaces differ has a board of its own.
 */
import { createHash, randomBytes } from "node:crypto";
import type { CacheAdapter, CacheEntry, TrustBoard, TrustBoardState } from "../cache/adapter.js";
import { WRITE_MARKER_MIN_MS } from "../cache/adapter.js";
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { RepairIntent, StoreAdapter } from "../store/adapter.js";
import type { Telemetry } from "../telemetry.js";

export interface CacheTrustOptions {
  cache: CacheAdapter;
  store: StoreAdapter;
  /** the live keyspaces: intents of their tables are applied to each keyspace on the table */
  keyspaces: () => KeyspaceConfig[];
  telemetry: Telemetry;
  log: Logger;
  /** how long a successful sweep makes the cache trusted, from the moment it began */
  leaseMs?: number;
  /** how often a daemon sweeps while trusted and no other daemon reads its board (default a third of the lease) */
  intervalMs?: number;
  /** how often the sweeper sweeps while other daemons read its board (default a ninth of the lease) */
  fastIntervalMs?: number;
  /** how often a daemon that does not sweep reads the trust board (default a third of the lease) */
  checkMs?: number;
  /** how often to sweep while not trusted */
  retryMs?: number;
  batch?: number;
}

const DEFAULT_LEASE_MS = 1_500;
const DEFAULT_RETRY_MS = 250;
const DEFAULT_BATCH = 500;

/** A read of the board: when it was sent (this daemon's clock) and the last ticket issued then. */
interface Observation {
  at: number;
  issued: number;
}

export class CacheTrust {
  /** performance.now() until which entries may be served */
  private until = 0;
  private everTrusted = false;
  /** the last sweep failed because PostgreSQL did not answer (this daemon's, or the sweeper's) */
  private storeFailing = false;
  /** performance.now() when the sweep under way asked PostgreSQL for the intents, while it waits */
  private storeAskedAt?: number;
  private running?: Promise<void>;
  /** what to run next: an own sweep is never replaced by a mere round */
  private wanted?: "sweep" | "round";
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private unsubscribe?: () => void;
  /** this daemon's name on the trust board */
  readonly id = randomBytes(6).toString("hex");
  private readonly board?: TrustBoard;
  /** whether this daemon held the sweeper lease at its last round */
  private holding = false;
  private observations: Observation[] = [];
  private boardName?: string;
  readonly leaseMs: number;
  private readonly intervalMs: number;
  private readonly fastIntervalMs: number;
  private readonly checkMs: number;
  /** the sweeper's last claim found other daemons reading the board */
  private readers = false;
  /** performance.now() when this daemon last said it reads the board */
  private markedAt = -Infinity;
  private readonly retryMs: number;
  private readonly batch: number;

  constructor(private readonly o: CacheTrustOptions) {
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.board = o.cache.trustBoard;
    this.intervalMs = o.intervalMs ?? Math.max(1, Math.floor(this.leaseMs / 3));
    this.fastIntervalMs = Math.min(
      this.intervalMs,
      o.fastIntervalMs ?? Math.max(1, Math.floor(this.leaseMs / 9)),
    );
    this.checkMs = o.checkMs ?? Math.max(1, Math.floor(this.leaseMs / 3));
    this.retryMs = Math.min(o.retryMs ?? DEFAULT_RETRY_MS, this.intervalMs);
    this.batch = o.batch ?? DEFAULT_BATCH;
  }

  /** Whether cache entries may be served now. */
  get trusted(): boolean {
    return performance.now() < this.until;
  }

  /** Whether this daemon is the one sweeping for the daemons that share its keyspaces. */
  get sweeper(): boolean {
    return this.holding || !this.board;
  }

  /**
   * Whether the cache is not trusted because PostgreSQL does not answer: the last sweep failed on it, or
   * the one under way has waited for it longer than half a lease (a hung server).
   */
  get storeDown(): boolean {
    if (this.trusted) return false;
    if (this.storeFailing) return true;
    return this.storeAskedAt !== undefined && performance.now() - this.storeAskedAt > this.leaseMs / 2;
  }

  /**
   * Resolves once every daemon that trusted its cache when this was called has either swept again (and
   * so saw every intent recorded before the call), seen a sweep that began after the call, or stopped
   * trusting: one lease.
   */
  outlast(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.leaseMs).unref());
  }

  /** Listens to the cache's connection and runs the first sweep; resolves once it ended (trusted or not). */
  async start(): Promise<void> {
    this.unsubscribe = this.o.cache.onConnectionChange?.((state) => {
      if (state === "up") this.wake();
    });
    await this.sweep();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.timer = undefined;
    // the next daemon need not wait for the lease to run out
    if (this.holding && this.board && this.boardName) {
      void this.board.release(this.boardName, this.id).catch(() => {});
    }
    this.holding = false;
  }

  /** Sweeps now (after the one under way, if any). */
  wake(): void {
    void this.sweep();
  }

  /**
   * One sweep by this daemon, whether or not it holds the lease (start, a reconnection, a reload, /readyz);
   * concurrent calls share it, and a call during a sweep runs one more after it.
   */
  sweep(): Promise<void> {
    return this.turn("sweep");
  }

  private turn(kind: "sweep" | "round"): Promise<void> {
    if (this.wanted !== "sweep") this.wanted = kind;
    if (this.running) return this.running;
    clearTimeout(this.timer);
    this.running = (async () => {
      while (this.wanted !== undefined && !this.stopped) {
        const next = this.wanted;
        this.wanted = undefined;
        await (next === "sweep" ? this.sweepOwn() : this.round()).catch((err: unknown) => {
          if (this.trusted)
            this.o.log.warn({ err: String(err) }, "trust board not read; trusted until the lease ends");
          else this.o.log.debug({ err: String(err) }, "trust board not read; retrying");
        });
      }
    })().finally(() => {
      this.running = undefined;
      this.arm(this.nextRoundMs());
    });
    return this.running;
  }

  private async sweepOwn(): Promise<void> {
    const claimed = await this.claim();
    await this.once(claimed?.ticket ?? null);
  }

  /** One round of the loop: the sweeper sweeps; the others read the board, and take the lease when free. */
  private async round(): Promise<void> {
    if (!this.board) return this.once(null);
    if (!this.holding) {
      const seen = await this.observe(this.name());
      if (seen.holder !== null) return;
    }
    const claimed = await this.claim();
    if (claimed !== null) await this.once(claimed.ticket);
  }

  /**
   * A daemon that reads the board trusts until a lease after its read preceding the last completed sweep:
   * with sweeps three times as frequent as reads, that is the read before the last, and trust runs a third
   * of a lease past the next read.
   */
  private nextRoundMs(): number {
    if (!this.trusted) return this.retryMs;
    if (!this.sweeper) return this.checkMs;
    return this.readers ? this.fastIntervalMs : this.intervalMs;
  }

  private arm(ms: number): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.turn("round"), ms);
    this.timer.unref();
  }

  /** The board of this daemon's keyspaces: daemons share one only when they apply intents alike. */
  private name(): string {
    const pairs = this.o
      .keyspaces()
      .map((ks) => `${ks.name}=${ks.table}`)
      .sort()
      .join("\n");
    const name = createHash("sha256").update(pairs).digest("hex").slice(0, 16);
    if (name !== this.boardName) {
      // the keyspaces changed (a reload): what was seen on the old board says nothing of the new ones
      this.boardName = name;
      this.observations = [];
      this.holding = false;
      this.markedAt = -Infinity;
    }
    return name;
  }

  /**
   * Takes or renews the lease for a sweep about to begin, with a ticket while others read the board; null
   * without a board or when another daemon holds the lease (a sweep of this daemon's own then proves
   * nothing to the others).
   */
  private async claim(): Promise<{ ticket: number | null } | null> {
    if (!this.board) return null;
    const board = this.name();
    const claimed = await this.board
      .claim(board, this.id, this.leaseMs / 3, this.storeFailing)
      .catch(() => null);
    if (claimed !== null && !this.holding) {
      this.o.log.info(
        { sweeper: this.id },
        "this daemon sweeps the repair intents for every daemon on its keyspaces",
      );
    }
    this.holding = claimed !== null;
    this.readers = (claimed?.ticket ?? null) !== null;
    return claimed;
  }

  /** Reads the board; trusts until lease after the latest read that a completed sweep began after. */
  private async observe(board: string): Promise<TrustBoardState> {
    const at = performance.now();
    // once a lease: the sweeper sweeps faster while someone reads its board
    const mark = at - this.markedAt >= this.leaseMs;
    const seen = await this.board!.read(board, mark ? 3 * this.leaseMs : undefined);
    if (mark) this.markedAt = at;
    this.observations = this.observations.filter((o) => o.at + this.leaseMs > at);
    // the counter went back (the cache lost it): earlier reads can not be matched any more
    if (this.observations.some((o) => o.issued > seen.issued)) this.observations = [];
    let proven: Observation | undefined;
    for (const o of this.observations) if (seen.swept > o.issued && (!proven || o.at > proven.at)) proven = o;
    this.observations.push({ at, issued: seen.issued });
    if (seen.holder !== null) this.storeFailing = seen.holderStoreFailing;
    if (proven) this.extend(proven.at + this.leaseMs);
    return seen;
  }

  private extend(until: number): void {
    if (this.stopped) return;
    const wasTrusted = this.trusted;
    this.until = Math.max(this.until, until);
    if (!wasTrusted && this.trusted) {
      if (this.everTrusted) this.o.log.info("cache entries trusted again: every repair intent is applied");
      this.everTrusted = true;
    }
  }

  /** One sweep; with a ticket, marked swept on the board once it succeeded. */
  private async once(ticket: number | null): Promise<void> {
    if (this.stopped) return;
    const began = performance.now();
    const byTable = new Map<string, KeyspaceConfig[]>();
    for (const ks of this.o.keyspaces()) {
      const list = byTable.get(ks.table) ?? [];
      list.push(ks);
      byTable.set(ks.table, list);
    }
    let step: "store" | "cache" = "store";
    try {
      let after: RepairIntent | null = null;
      for (;;) {
        this.storeAskedAt = performance.now();
        const intents = await this.o.store.pendingRepairs([...byTable.keys()], after, this.batch);
        this.storeAskedAt = undefined;
        await Promise.all(intents.map((i) => this.apply(i, byTable.get(i.table) ?? [])));
        if (intents.length < this.batch) break;
        after = intents[intents.length - 1]!;
      }
      step = "cache";
      // Also when there was nothing to repair: the cache must answer before its entries are served.
      await this.o.cache.ping();
    } catch (err) {
      this.storeAskedAt = undefined;
      // applying an intent writes to the cache: only a failed read of the intents blames PostgreSQL
      this.storeFailing = step === "store" && !isCacheError(err);
      if (!this.trusted) this.o.log.debug({ err: String(err) }, "repair sweep failed; retrying");
      else this.o.log.warn({ err: String(err) }, "repair sweep failed; cache trusted until the lease ends");
      return;
    }
    this.storeFailing = false;
    this.extend(began + this.leaseMs);
    if (ticket !== null && this.boardName !== undefined) {
      await this.board!.swept(this.boardName, ticket).catch(() => {});
    }
  }

  /**
   * A tombstone at the intent's version in each keyspace on the table: it replaces any older entry and is
   * refused by one of that version or newer (the update that failed landed after all, or a later write).
   */
  private async apply(intent: RepairIntent, keyspaces: KeyspaceConfig[]): Promise<void> {
    const entry: CacheEntry = { kind: "tombstone", version: intent.version, freshUntil: 0 };
    for (const ks of keyspaces) {
      await this.o.cache.setIfNewer(ks.name, intent.key, entry, Math.max(ks.ttlMs, WRITE_MARKER_MIN_MS));
    }
    if (await this.o.store.clearRepair(intent)) {
      for (const ks of keyspaces) {
        this.o.telemetry.emit({
          type: "cache_repair",
          keyspace: ks.name,
          outcome: "invalidated",
          staleSeconds: intent.ageSeconds,
        });
      }
    }
  }
}

function isCacheError(err: unknown): boolean {
  return (err as { backend?: unknown } | null)?.backend === "cache";
}
