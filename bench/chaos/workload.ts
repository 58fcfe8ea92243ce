/**
 * Clients that read and write at random and record what they saw. Each operation goes to a daemon picked
 * at random, so a client's reads follow its own and others' writes across daemons. Each client draws from
 * its own seeded generator: the same seed gives every client the same operations in the same order.
 * On keyspaces whose writes PostgreSQL commits at once, some values ask the table's deferred trigger to
 * refuse the commit (400) or to hold it past the request deadline (504: it may commit or not).
 */
import { Agent, request } from "undici";
import type { History, ReadRecord, Written } from "./history.js";
import { pick, stream } from "./random.js";

export interface WorkloadKeyspace {
  name: string;
  /** values may carry refuse/slow flags (not write-behind: its queue would retry and dead-letter them) */
  flags: boolean;
}

export interface WorkloadOptions {
  daemons: string[];
  keyspaces: WorkloadKeyspace[];
  keys: string[];
  clients: number;
  seed: number;
  /** performance.now() at the start of the run: times are recorded from there */
  t0: number;
  /** how long a refused value's commit sleeps before it is refused (widens the window for dirty reads) */
  refuseMs: number;
  /** how long a slow value's commit sleeps: past the request deadline */
  slowMs: number;
}

/** Statuses the protocol allows for these requests while backends fail (400: a refused commit). */
const ALLOWED = new Set([200, 202, 204, 400, 404, 429, 503, 504]);
const REFUSE_RATE = 0.03;
const SLOW_RATE = 0.012;
/** Half the operations go to the first few keys of a keyspace: races on one key are where bugs hide. */
const HOT_KEYS = 3;
const HOT_SHARE = 0.5;

type Answer = { status: number; headers: Record<string, unknown>; text: string } | "error";

export class Workload {
  private stopped = false;
  private readonly agent = new Agent({
    connect: { timeout: 2000 },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    keepAliveTimeout: 1000,
  });
  private runners: Promise<void>[] = [];

  constructor(
    private readonly o: WorkloadOptions,
    private readonly history: History,
  ) {}

  start(): void {
    this.runners = Array.from({ length: this.o.clients }, (_, c) => this.client(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.runners);
    await this.agent.close();
  }

  private now(): number {
    return performance.now() - this.o.t0;
  }

  private async client(c: number): Promise<void> {
    const random = stream(this.o.seed, c);
    let n = 0;
    const value = (ks: WorkloadKeyspace, refuseRate: number, slowRate: number): Written => {
      const v: Written = { c, n: n++ };
      const x = random();
      if (ks.flags && x < refuseRate) v.refuse = this.o.refuseMs;
      else if (ks.flags && x < refuseRate + slowRate) v.slow = this.o.slowMs;
      return v;
    };
    const keys = this.o.keys;
    const hot = keys.slice(0, HOT_KEYS);
    const key = () => (random() < HOT_SHARE ? pick(random, hot) : pick(random, keys));
    const some = () => [...new Set([key(), key(), key()])];
    while (!this.stopped) {
      const ks = pick(random, this.o.keyspaces);
      const daemon = Math.floor(random() * this.o.daemons.length);
      const r = random();
      if (r < 0.35) await this.put(c, daemon, ks.name, key(), value(ks, REFUSE_RATE, SLOW_RATE));
      else if (r < 0.45) {
        const items = new Map(some().map((k) => [k, value(ks, REFUSE_RATE / 3, SLOW_RATE / 3)]));
        await this.mset(c, daemon, ks.name, items);
      } else if (r < 0.92) await this.get(c, daemon, ks.name, key());
      else await this.mget(c, daemon, ks.name, some());
    }
  }

  private async call(
    daemon: number,
    method: "GET" | "PUT" | "POST",
    path: string,
    body?: string,
  ): Promise<Answer> {
    try {
      const r = await request(`${this.o.daemons[daemon]}${path}`, {
        method,
        body,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        dispatcher: this.agent,
      });
      const text = await r.body.text();
      // A refused call comes back at once while a breaker is open: pause as a polite client would.
      if (r.statusCode >= 500) await new Promise((resolve) => setTimeout(resolve, 10));
      if (!ALLOWED.has(r.statusCode))
        this.history.unexpected.push(
          `${method} ${path} at d${daemon}: ${r.statusCode} ${text.slice(0, 200)}`,
        );
      return { status: r.statusCode, headers: r.headers, text };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the daemon is down: do not spin
      return "error";
    }
  }

  /** A 400 is expected only for a write holding a value the trigger refuses, and then it is the only answer. */
  private expectRefusal(path: string, daemon: number, r: Answer, values: Written[]): void {
    if (r === "error") return;
    const flagged = values.some((v) => v.refuse !== undefined);
    if (r.status === 400 && !flagged)
      this.history.unexpected.push(
        `write ${path} at d${daemon}: 400 for values nobody refuses: ${r.text.slice(0, 200)}`,
      );
    if ((r.status === 200 || r.status === 202) && flagged)
      this.history.unexpected.push(`write ${path} at d${daemon}: ${r.status} for a value PostgreSQL refuses`);
  }

  private async put(client: number, daemon: number, ks: string, key: string, value: Written): Promise<void> {
    const op = this.history.op();
    const path = `/v1/kv/${ks}/${encodeURIComponent(key)}`;
    const start = this.now();
    const r = await this.call(daemon, "PUT", path, JSON.stringify(value));
    const end = this.now();
    this.expectRefusal(path, daemon, r, [value]);
    const acked = r !== "error" && (r.status === 200 || r.status === 202);
    const version = acked ? (JSON.parse(r.text) as { version: number }).version : undefined;
    const status = r === "error" ? "error" : r.status;
    this.history.writes.push({ op, client, daemon, ks, key, value, start, end, acked, version, status });
  }

  private async mset(client: number, daemon: number, ks: string, items: Map<string, Written>): Promise<void> {
    const op = this.history.op();
    const path = `/v1/kv/${ks}/_mset`;
    const start = this.now();
    const r = await this.call(daemon, "POST", path, JSON.stringify({ items: Object.fromEntries(items) }));
    const end = this.now();
    this.expectRefusal(path, daemon, r, [...items.values()]);
    const acked = r !== "error" && (r.status === 200 || r.status === 202);
    const versions = acked ? (JSON.parse(r.text) as { versions: Record<string, number> }).versions : {};
    const status = r === "error" ? "error" : r.status;
    for (const [key, value] of items) {
      this.history.writes.push({
        op,
        client,
        daemon,
        ks,
        key,
        value,
        start,
        end,
        acked,
        version: versions[key],
        status,
      });
    }
  }

  /** One GET; also used for the reads after healing (client -1). */
  async get(client: number, daemon: number, ks: string, key: string): Promise<ReadRecord> {
    const op = this.history.op();
    const start = this.now();
    const r = await this.call(daemon, "GET", `/v1/kv/${ks}/${encodeURIComponent(key)}`);
    const end = this.now();
    const base = { op, client, daemon, ks, key, start, end };
    let read: ReadRecord;
    if (r === "error") read = { ...base, status: "error", found: false };
    else {
      const etag =
        typeof r.headers.etag === "string" ? Number(r.headers.etag.replace(/^W\/|"/g, "")) : undefined;
      const found = r.status === 200;
      read = {
        ...base,
        status: r.status,
        found,
        value: found ? (JSON.parse(r.text) as Written) : undefined,
        version: found ? etag : r.status === 404 ? (etag ?? 0) : undefined,
        cache: typeof r.headers["x-cache"] === "string" ? r.headers["x-cache"] : undefined,
      };
    }
    this.history.reads.push(read);
    return read;
  }

  private async mget(client: number, daemon: number, ks: string, keys: string[]): Promise<void> {
    const op = this.history.op();
    const start = this.now();
    const r = await this.call(daemon, "POST", `/v1/kv/${ks}/_mget`, JSON.stringify({ keys }));
    const end = this.now();
    const status = r === "error" ? "error" : r.status;
    const values =
      r !== "error" && r.status === 200
        ? (JSON.parse(r.text) as { values: Record<string, Written | null> }).values
        : {};
    for (const key of keys) {
      const value = values[key] ?? undefined;
      // _mget carries no versions: the checker takes the version its value was written with
      this.history.reads.push({
        op,
        client,
        daemon,
        ks,
        key,
        start,
        end,
        status,
        found: value !== undefined,
        value,
        mget: true,
      });
    }
  }
}
