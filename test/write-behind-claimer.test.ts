/**
 * One flusher per write-behind keyspace looks for writes to take over (the claimer, chosen by a lease);
 * the others only flush what they read. The claimer is SIGKILLed while it holds writes it read and had not
 * flushed yet (a flusher waits until its oldest write is one flush interval old): a survivor takes the
 * lease and the dead daemon's writes within one flush interval of its heartbeat running out, and a flush
 * through a survivor returns with every acknowledged write in PostgreSQL. Three daemon processes; run
 * `npm run build` first.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_URL, REDIS_URL, spawnDaemon, uniqueTag, type ChildDaemon } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const table = `${tag}_ev`;
const FLUSH_MS = 2_000;
/** a heartbeat (and the claimer lease) outlives two flush intervals by this much */
const HEARTBEAT_MS = 2 * FLUSH_MS + 250;
const stream = `${tag}:wb:{ev}:stream`;
let direct: Redis;
let db: pg.Client;
let daemons: ChildDaemon[] = [];

const yaml = `
server: { port: 0 }
cache: { url: "${REDIS_URL}", prefix: ${tag} }
store: { url: "${PG_URL}" }
checker: { enabled: false }
keyspaces:
  ev:
    strategy: write-behind
    table: ${table}
    write_behind: { flush_interval: ${FLUSH_MS}ms, batch_size: 500, max_queue: 100000 }
`;

async function claimer(): Promise<string | null> {
  return direct.get(`${tag}:wb:{ev}:claimer`);
}

const pidOf = (consumer: string) => Number(consumer.split(":")[1]);

/** Writes held by each consumer, not yet in PostgreSQL. */
async function pendingBy(): Promise<Map<string, number>> {
  const r = (await direct.xpending(stream, "flushers")) as [
    number,
    string,
    string,
    [string, string][] | null,
  ];
  return new Map((r[3] ?? []).map(([c, n]) => [c, Number(n)]));
}

beforeAll(async () => {
  direct = new Redis(REDIS_URL);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  daemons = await Promise.all([spawnDaemon(yaml), spawnDaemon(yaml), spawnDaemon(yaml)]);
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.kill("SIGKILL")));
  const keys = await direct.keys(`${tag}:*`);
  if (keys.length > 0) await direct.del(...keys);
  direct?.disconnect();
  await db?.query(`drop table if exists ${table}`);
  await db?.end();
});

describe("the write-behind claimer", () => {
  it("is one daemon of the three", async () => {
    const deadline = Date.now() + 10_000;
    while ((await claimer()) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const holder = await claimer();
    expect(holder).not.toBeNull();
    expect(daemons.map((d) => d.process.pid)).toContain(pidOf(holder!));
  });

  it("SIGKILLed holding writes: a survivor takes them over within one flush interval, nothing is lost", async () => {
    const holder = (await claimer())!;
    const victim = daemons.find((d) => d.process.pid === pidOf(holder))!;
    const survivors = daemons.filter((d) => d !== victim);
    // Bursts a little apart: each goes to a flusher that waits for new writes, which then holds it for up
    // to a flush interval; the claimer soon holds one.
    const acknowledged = new Map<string, number>();
    for (let wave = 0; wave < 8 && !((await pendingBy()).get(holder)! > 0); wave++) {
      await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const key = `w${wave}-${i}`;
          const r = await call(daemons[i % 3]!.url, "PUT", `/v1/kv/ev/${key}`, { wave, i });
          expect(r.status).toBe(202);
          acknowledged.set(key, wave);
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    const held = (await pendingBy()).get(holder) ?? 0;
    expect(held, "the claimer holds writes PostgreSQL has not taken").toBeGreaterThan(0);
    await victim.kill("SIGKILL");
    const killedAt = performance.now();

    let next: string | null = holder;
    let tookOverMs = Infinity;
    while (performance.now() - killedAt < 20_000) {
      next = await claimer();
      if (next !== null && next !== holder && !((await pendingBy()).get(holder)! > 0)) {
        tookOverMs = performance.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    // the heartbeat runs out, then the next look (one flush interval, and a round's block) takes the writes
    expect(tookOverMs).toBeLessThan(HEARTBEAT_MS + 2 * FLUSH_MS);
    expect(survivors.map((d) => d.process.pid)).toContain(pidOf(next!));

    const flushed = await call(survivors[0]!.url, "POST", "/v1/keyspaces/ev/flush");
    expect(flushed.status).toBe(200);
    const rows = await db.query(`select key, value from ${table}`);
    const inPg = new Map(
      rows.rows.map((r: { key: string; value: { wave: number } }) => [r.key, r.value.wave]),
    );
    expect(inPg.size).toBe(acknowledged.size);
    for (const [key, wave] of acknowledged) expect(inPg.get(key), key).toBe(wave);
  });
});
