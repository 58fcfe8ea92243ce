/** Checks in a loop while writers and readers hammer the same keys under every strategy: nothing is flagged. */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { call } from "./support/http.js";
import { clients, daemonWith, dropPrefix, PG_URL, REDIS_URL } from "./checker-support.js";

const tag = `t${randomBytes(4).toString("hex")}`;
const prefix = `sc_chkr_${tag}`;
const spaces = {
  ca: "strategy: cache-aside",
  rt: "strategy: read-through",
  wts: "{ strategy: write-through, consistency: strict }",
  wte: "{ strategy: write-through, consistency: eventual }",
  wa: "strategy: write-around",
  wb: "{ strategy: write-behind, write_behind: { flush_interval: 30ms, batch_size: 50 } }",
};
const table = (ks: string) => `chkr_${ks}_${tag}`;
const { redis, pg } = clients();
let daemon: Daemon;

beforeAll(async () => {
  const lines = Object.entries(spaces).map(([ks, def]) => {
    const body = def.startsWith("{") ? def.slice(1, -1).trim() : def;
    return `  ${ks}: { ${body}, table: ${table(ks)}, ttl: 1h, negative_ttl: 1h }`;
  });
  daemon = await daemonWith(
    `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
checker: { enabled: false, sample: 40, repair: invalidate, alert_ratio: 0 }
keyspaces:
${lines.join("\n")}
`,
    { limits: { recheckDelayMs: 30, lostWriteMarginMs: 2_000 } },
  );
  // read-through takes no writes: its rows are there from the start
  for (let i = 0; i < 20; i++) {
    await pg.query(
      `insert into ${table("rt")} (key, value, version, updated_at) values ($1, $2, $3, now())`,
      [`k${i}`, JSON.stringify({ i }), Date.now() * 1000 + i],
    );
  }
});

afterAll(async () => {
  await daemon?.stop();
  for (const ks of Object.keys(spaces)) await pg.query(`drop table if exists ${table(ks)}`);
  await pg.query(`delete from sidecache_tombstones where tbl like $1`, [`chkr_%_${tag}`]);
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await pg.end();
});

describe("checks racing writers", () => {
  it("flags zero keys under every strategy while 20 keys are written, deleted and read concurrently", async () => {
    const OPS = 150;
    let working = 0;
    const ops = { writes: 0, reads: 0 };
    const worker = async (ks: string, writer: boolean) => {
      working++;
      for (let n = 0; n < OPS; n++) {
        const key = `k${Math.floor(Math.random() * 20)}`;
        const roll = Math.random();
        if (writer && ks !== "rt" && roll < 0.45) {
          const r = await call(daemon.url, "PUT", `/v1/kv/${ks}/${key}`, { n: Math.random() });
          expect([200, 202]).toContain(r.status);
          ops.writes++;
        } else if (writer && ks !== "rt" && roll < 0.55) {
          const r = await call(daemon.url, "DELETE", `/v1/kv/${ks}/${key}`);
          expect([202, 204]).toContain(r.status);
          ops.writes++;
        } else {
          const r = await call(daemon.url, "GET", `/v1/kv/${ks}/${key}`);
          expect([200, 404]).toContain(r.status);
          ops.reads++;
        }
      }
      working--;
    };
    const reports: Record<string, unknown>[] = [];
    const checks = async (ks: string) => {
      let runs = 0;
      // at least three runs each, and checks for as long as anyone writes
      while (working > 0 || runs < 3) {
        runs++;
        const body = reports.length % 3 === 0 ? { full: true } : { sample: 40 };
        const r = await call(daemon.url, "POST", `/v1/keyspaces/${ks}/check`, body);
        expect(r.status, r.text).toBe(200);
        reports.push(r.json() as Record<string, unknown>);
      }
    };
    await Promise.all(
      Object.keys(spaces).flatMap((ks) => [
        worker(ks, true),
        worker(ks, true),
        worker(ks, false),
        checks(ks),
      ]),
    );
    const flagged = reports.filter((r) => r.inconsistent !== 0);
    expect(flagged).toEqual([]);
    const compared = reports.reduce((n, r) => n + (r.sampled as number), 0);
    expect(ops.writes).toBeGreaterThan(500);
    expect(reports.length).toBeGreaterThanOrEqual(18);
    expect(compared).toBeGreaterThan(300);
    // Once the writers stop (and write-behind has flushed), every key is consistent and none is skipped.
    await call(daemon.url, "POST", "/v1/keyspaces/wb/flush");
    for (const ks of Object.keys(spaces)) {
      const r = (await call(daemon.url, "POST", `/v1/keyspaces/${ks}/check`, { full: true })).json();
      expect(r).toMatchObject({ inconsistent: 0, skipped: 0 });
    }
  });
});
