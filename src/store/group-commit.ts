/**
 * Group commit: the writes of a table that arrive while a statement of it is in flight wait and go out
 * together in the next one, each answered with its own result.
 *
 * - A statement carries at most `maxOps` writes and each key at most once, and no key of a statement in
 *   flight: a unit (one request's writes) naming such a key waits for a later statement, behind every
 *   earlier unit of that key, so the writes of a key go out one statement after the other in their order
 *   of arrival (and never wait for each other's locks in PostgreSQL).
 * - `inFlight` statements run at once. A unit that has waited for them longer than a statement usually
 *   takes (4 × the recent mean, within [minWaitMs, maxWaitMs]) starts another one, up to `maxInFlight`: a
 *   statement that is slower than usual (a lock held by another client, a slow trigger) holds the others
 *   back only that long, while statements of the usual length are never doubled up (more statements at
 *   once mean more commits, each waiting for its own flush of the WAL).
 * - A unit whose caller stopped waiting (withdrew) while it still waits is dropped: nothing of it is
 *   written. One already sent is up to PostgreSQL.
 */
import type { Withdrawal } from "./withdrawal.js";

export interface GroupLimits {
  maxOps: number;
  inFlight: number;
  minWaitMs: number;
  maxWaitMs: number;
  maxInFlight: number;
}

/** Weight of the newest statement in the running mean of their durations. */
const EWMA_WEIGHT = 0.2;

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Entry<U, R> {
  unit: U;
  keys: string[];
  size: number;
  since: number;
  resolve(value: R): void;
  reject(error: unknown): void;
  answer: Promise<R>;
}

export class WithdrawnError extends Error {
  constructor() {
    super("The caller stopped waiting before the write was sent: nothing was written.");
  }
}

export class GroupCommit<U, R> {
  private queue: Entry<U, R>[] = [];
  /** the statements in flight, by their units */
  private readonly sending: Entry<U, R>[][] = [];
  private timer: NodeJS.Timeout | undefined;
  /** running mean of how long a statement takes, ms */
  private statementMs = 0;

  constructor(
    private readonly limits: GroupLimits,
    /** runs one statement for these units; one answer per unit, in order */
    private readonly run: (units: U[]) => Promise<Settled<R>[]>,
  ) {}

  /** Queues a unit naming these keys (distinct) with `size` writes; resolves with its own answer. */
  submit(unit: U, keys: string[], size: number, withdrawal?: Withdrawal): Promise<R> {
    if (withdrawal?.withdrawn) return Promise.reject(new WithdrawnError());
    let resolve!: (value: R) => void;
    let reject!: (error: unknown) => void;
    const answer = new Promise<R>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: Entry<U, R> = { unit, keys, size, since: performance.now(), resolve, reject, answer };
    this.queue.push(entry);
    withdrawal?.onWithdraw(() => this.withdraw(entry));
    this.pump();
    return answer;
  }

  /** Resolves once no unit naming the key that is waiting or in flight now is left. */
  async idle(key: string): Promise<void> {
    const naming = [...this.queue, ...this.sending.flat()].filter((e) => e.keys.includes(key));
    if (naming.length > 0) await Promise.allSettled(naming.map((e) => e.answer));
  }

  /** Units waiting and statements in flight (tests, metrics). */
  get depth(): { waiting: number; running: number } {
    return { waiting: this.queue.length, running: this.sending.length };
  }

  private withdraw(entry: Entry<U, R>): void {
    const i = this.queue.indexOf(entry);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.finish(entry, { ok: false, error: new WithdrawnError() });
  }

  /** How long waiting units let the statements in flight run before they start another one. */
  private get patience(): number {
    const { minWaitMs, maxWaitMs } = this.limits;
    return Math.min(maxWaitMs, Math.max(minWaitMs, 4 * this.statementMs));
  }

  private pump(): void {
    const { inFlight, maxInFlight } = this.limits;
    const maxWaitMs = this.patience;
    while (this.queue.length > 0) {
      const waited = performance.now() - this.queue[0]!.since;
      if (this.sending.length >= (waited >= maxWaitMs ? maxInFlight : inFlight)) break;
      const batch = this.take();
      // Every unit waits for a key in flight: the end of that statement pumps again.
      if (batch.length === 0) return;
      this.dispatch(batch);
    }
    if (this.queue.length > 0 && this.sending.length < maxInFlight && !this.timer) {
      const wait = Math.max(0, maxWaitMs - (performance.now() - this.queue[0]!.since));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, wait);
    }
  }

  /** The next statement's units: in order of arrival, each key once and none in flight, at most maxOps writes. */
  private take(): Entry<U, R>[] {
    const taken: Entry<U, R>[] = [];
    const rest: Entry<U, R>[] = [];
    const keys = new Set<string>();
    const blocked = new Set<string>();
    // keys of the statements in flight
    for (const b of this.sending) for (const e of b) for (const k of e.keys) blocked.add(k);
    let size = 0;
    for (const e of this.queue) {
      const fits = taken.length === 0 || size + e.size <= this.limits.maxOps;
      if (fits && e.keys.every((k) => !keys.has(k) && !blocked.has(k))) {
        taken.push(e);
        size += e.size;
        for (const k of e.keys) keys.add(k);
      } else {
        rest.push(e);
        for (const k of e.keys) blocked.add(k);
      }
    }
    this.queue = rest;
    return taken;
  }

  private dispatch(batch: Entry<U, R>[]): void {
    this.sending.push(batch);
    const started = performance.now();
    const ended = (answers: Settled<R>[]) => {
      const ms = performance.now() - started;
      this.statementMs =
        this.statementMs === 0 ? ms : this.statementMs + EWMA_WEIGHT * (ms - this.statementMs);
      this.sending.splice(this.sending.indexOf(batch), 1);
      this.pump();
      batch.forEach((e, i) => this.finish(e, answers[i] ?? { ok: false, error: new Error("no answer") }));
    };
    this.run(batch.map((e) => e.unit)).then(ended, (error: unknown) =>
      ended(batch.map(() => ({ ok: false, error }))),
    );
  }

  private finish(entry: Entry<U, R>, answer: Settled<R>): void {
    if (answer.ok) entry.resolve(answer.value);
    else entry.reject(answer.error);
  }
}
