/**
 * Taking over writes a flusher left behind. Every consumer keeps a heartbeat key alive (twice its flush
 * interval); the writes pending at a consumer whose heartbeat is gone (a daemon killed, or stopped without
 * draining) are taken at once, so a restarted or surviving daemon flushes them within about one flush
 * interval. Entries idle in any consumer's list (a write PostgreSQL refused that waits for its next try)
 * are claimed with XAUTOCLAIM once idle for a few flush intervals. Consumers long idle with nothing
 * pending are removed from the group now and then, so restarts do not pile them up.
 *
 * One consumer of the keyspace looks, the holder of the claimer lease (taken with the heartbeat, in the
 * same round trip, and kept as long): the others only beat. A holder that dies loses the lease when its
 * heartbeat goes, and the next consumer to beat takes it and looks at once. A flush() looks whoever holds
 * the lease.
 */
import type { Logger } from "../log.js";
import type { QueuedWrite } from "./keys.js";
import type { WriteQueue } from "./queue.js";

const JANITOR_EVERY_MS = 60_000;
const CONSUMER_IDLE_LIMIT_MS = 10 * 60_000;
/** A heartbeat outlives two flush intervals by this much: a round that runs a little late is not death. */
const HEARTBEAT_MARGIN_MS = 250;

export class Claims {
  private cursor = "0-0";
  private lastClaim = 0;
  private lastJanitor = Date.now();
  /** whether this consumer held the claimer lease at its last heartbeat */
  private holding = false;

  constructor(
    private readonly queue: WriteQueue,
    private readonly consumer: string,
    /** how long an entry must sit idle before anyone takes it */
    readonly minIdleMs: number,
    /** how often to look */
    private readonly everyMs: number,
    private readonly log: Logger,
  ) {}

  /** Idle entries, at most count, when a look is due (or forced); none otherwise. */
  async take(count: number, force = false): Promise<QueuedWrite[]> {
    const now = Date.now();
    const was = this.holding;
    this.holding = await this.queue.heartbeat(this.consumer, 2 * this.everyMs + HEARTBEAT_MARGIN_MS, was);
    if (this.holding && !was) {
      this.log.debug("write-behind: claimer lease taken");
      this.lastClaim = 0;
    }
    if (!force && (!this.holding || now - this.lastClaim < this.everyMs)) return [];
    this.lastClaim = now;
    const consumers = await this.queue.consumers();
    const orphans = await this.fromDead(consumers, count);
    if (orphans.length > 0) return orphans;
    let writes: QueuedWrite[] = [];
    // idle and nothing pending anywhere: nothing to claim
    if (consumers.some((c) => c.pending > 0)) {
      const claimed = await this.queue.claim(this.consumer, this.minIdleMs, this.cursor, count);
      this.cursor = claimed.next;
      writes = claimed.writes;
    }
    if (writes.length > 0) {
      this.log.debug({ claimed: writes.length }, "write-behind: claimed idle writes");
    }
    if (now - this.lastJanitor >= JANITOR_EVERY_MS) {
      this.lastJanitor = now;
      await this.sweepConsumers(consumers);
    }
    return writes;
  }

  /** Gives the claimer lease back (a flusher stopping), so the next consumer need not wait for it to run out. */
  async release(): Promise<void> {
    if (!this.holding) return;
    this.holding = false;
    await this.queue.releaseClaimer(this.consumer);
  }

  /** The writes of consumers whose heartbeat is gone, at most count. */
  private async fromDead(
    consumers: { name: string; pending: number }[],
    count: number,
  ): Promise<QueuedWrite[]> {
    const holding = consumers.filter((c) => c.pending > 0 && c.name !== this.consumer);
    for (const name of await this.queue.dead(holding.map((c) => c.name))) {
      const writes = await this.queue.takeFrom(name, this.consumer, count);
      if (writes.length > 0) {
        this.log.info(
          { from: name, writes: writes.length },
          "write-behind: took over the writes of a dead flusher",
        );
        return writes;
      }
    }
    return [];
  }

  private async sweepConsumers(consumers: { name: string; pending: number; idle: number }[]): Promise<void> {
    for (const c of consumers) {
      if (c.name !== this.consumer && c.pending === 0 && c.idle > CONSUMER_IDLE_LIMIT_MS) {
        await this.queue.dropConsumer(c.name);
      }
    }
  }
}
