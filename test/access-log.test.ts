/** log.access: off by default (only failures at info), one info line per request when on. */
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { PG_URL, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";

const tag = uniqueTag();
const daemons: Daemon[] = [];

async function start(
  access: boolean,
): Promise<{ daemon: Daemon; lines: { level: number; msg: string; status?: number }[] }> {
  const lines: { level: number; msg: string; status?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const config = parseConfig(
    `
server: { port: 0 }
cache: { url: "memory:" }
store: { url: ${PG_URL} }
checker: { enabled: false }
log: { level: info, access: ${access} }
keyspaces:
  users: { strategy: cache-aside, table: ${tag}_users_${access ? "on" : "off"} }
`,
    "access.yaml",
  );
  const daemon = await Daemon.start(config, { log: pino({ level: "info" }, sink) });
  daemons.push(daemon);
  return { daemon, lines };
}

afterAll(async () => {
  for (const d of daemons) await d.stop();
  const pg = await import("pg");
  const db = new pg.default.Client({ connectionString: PG_URL });
  await db.connect();
  // two daemons with an in-process cache may not share a table: each has its own
  await db.query(`drop table if exists ${tag}_users_on, ${tag}_users_off`);
  await db.end();
});

it("by default a served request writes no info line; a refused one does", async () => {
  const { daemon, lines } = await start(false);
  expect((await call(daemon.url, "PUT", "/v1/kv/users/a", { v: 1 })).status).toBe(200);
  expect((await call(daemon.url, "GET", "/v1/kv/users/a")).status).toBe(200);
  expect((await call(daemon.url, "GET", "/v1/kv/users/absent")).status).toBe(404);
  await new Promise((r) => setTimeout(r, 20));
  expect(lines.filter((l) => l.msg === "request")).toEqual([]);
});

it("with log.access every request writes one info line", async () => {
  const { daemon, lines } = await start(true);
  await call(daemon.url, "PUT", "/v1/kv/users/b", { v: 1 });
  await call(daemon.url, "GET", "/v1/kv/users/b");
  await call(daemon.url, "GET", "/healthz");
  await new Promise((r) => setTimeout(r, 20));
  const access = lines.filter((l) => l.msg === "request");
  expect(access.map((l) => [l.level, l.status])).toEqual([
    [30, 200],
    [30, 200],
  ]);
});
