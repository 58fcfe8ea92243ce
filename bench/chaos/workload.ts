/** Clients that read and write at random over every keyspace and record what they saw. */
import { Agent, request } from "undici";
import type { History, Written } from "./history.js";

export interface WorkloadOptions {
  base: string;
  keyspaces: string[];
  keys: string[];
  clients: number;
  random: () => number;
}

/** Statuses the protocol allows for these requests while backends fail. */
const ALLOWED = new Set([200, 202, 204, 404, 429, 503, 504]);

export class Workload {
  private stopped = false;
  private readonly agent = new Agent({
    connect: { timeout: 2000 },
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
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

  private pick<T>(items: T[]): T {
    return items[Math.floor(this.o.random() * items.length)]!;
  }

  private async client(c: number): Promise<void> {
    let n = 0;
    while (!this.stopped) {
      const ks = this.pick(this.o.keyspaces);
      const r = this.o.random();
      if (r < 0.4) await this.put(ks, this.pick(this.o.keys), { c, n: n++ });
      else if (r < 0.5) {
        const keys = [...new Set([this.pick(this.o.keys), this.pick(this.o.keys), this.pick(this.o.keys)])];
        await this.mset(ks, new Map(keys.map((k) => [k, { c, n: n++ }])));
      } else await this.get(ks, this.pick(this.o.keys));
    }
  }

  private async call(
    method: "GET" | "PUT" | "POST",
    path: string,
    body?: string,
  ): Promise<{ status: number; headers: Record<string, unknown>; text: string } | "error"> {
    try {
      const r = await request(`${this.o.base}${path}`, {
        method,
        body,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        dispatcher: this.agent,
      });
      const text = await r.body.text();
      // A refused call comes back at once while a breaker is open: pause as a polite client would.
      if (r.statusCode >= 500) await new Promise((resolve) => setTimeout(resolve, 10));
      if (!ALLOWED.has(r.statusCode))
        this.history.unexpected.push(`${method} ${path}: ${r.statusCode} ${text.slice(0, 200)}`);
      return { status: r.statusCode, headers: r.headers, text };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the daemon is down: do not spin
      return "error";
    }
  }

  private async put(ks: string, key: string, value: Written): Promise<void> {
    const start = performance.now();
    const r = await this.call("PUT", `/v1/kv/${ks}/${encodeURIComponent(key)}`, JSON.stringify(value));
    const end = performance.now();
    const acked = r !== "error" && (r.status === 200 || r.status === 202);
    const version = acked ? (JSON.parse(r.text) as { version: number }).version : undefined;
    this.history.writes.push({
      ks,
      key,
      value,
      start,
      end,
      acked,
      version,
      status: r === "error" ? "error" : r.status,
    });
  }

  private async mset(ks: string, items: Map<string, Written>): Promise<void> {
    const start = performance.now();
    const r = await this.call(
      "POST",
      `/v1/kv/${ks}/_mset`,
      JSON.stringify({ items: Object.fromEntries(items) }),
    );
    const end = performance.now();
    const acked = r !== "error" && (r.status === 200 || r.status === 202);
    const versions = acked ? (JSON.parse(r.text) as { versions: Record<string, number> }).versions : {};
    for (const [key, value] of items) {
      this.history.writes.push({
        ks,
        key,
        value,
        start,
        end,
        acked,
        version: versions[key],
        status: r === "error" ? "error" : r.status,
      });
    }
  }

  private async get(ks: string, key: string): Promise<void> {
    const start = performance.now();
    const r = await this.call("GET", `/v1/kv/${ks}/${encodeURIComponent(key)}`);
    const end = performance.now();
    if (r === "error") {
      this.history.reads.push({ ks, key, start, end, status: "error", version: 0 });
      return;
    }
    const etag = typeof r.headers.etag === "string" ? Number(r.headers.etag.replace(/"/g, "")) : 0;
    this.history.reads.push({
      ks,
      key,
      start,
      end,
      status: r.status,
      version: r.status === 200 ? etag : r.status === 404 ? 0 : 0,
      value: r.status === 200 ? (JSON.parse(r.text) as Written) : undefined,
      cache: typeof r.headers["x-cache"] === "string" ? r.headers["x-cache"] : undefined,
    });
  }
}
