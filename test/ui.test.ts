/**
 * The status page in a real headless Chromium (Debian's, driven by playwright-core): behind auth with
 * protect_ops, it shows every keyspace, readiness, hit-ratio charts, the last checks, and the dead letters
 * of a write-behind keyspace whose writes PostgreSQL refused (a CHECK constraint); dropping one and
 * replaying another from the page work. A screenshot is saved.
 */
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser } from "playwright-core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { Daemon } from "../src/daemon.js";
import { silentLogger } from "../src/log.js";
import { dropPrefix, until } from "./checker-support.js";
import { PG_URL, REDIS_URL, uniqueTag } from "./support/daemon.js";
import { call } from "./support/http.js";
import { Redis } from "ioredis";

const CHROMIUM = process.env.SIDECACHE_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
export const SCREENSHOT = resolve("test-results/status-page.png");

const tag = uniqueTag();
const prefix = `sc_ui_${tag}`;
const tables = { users: `ui_users_${tag}`, stock: `ui_stock_${tag}`, prices: `ui_prices_${tag}` };
const OPERATOR = `operator-${tag}-0123456789`;
const READER = `reader-${tag}-0123456789`;
const AUTH = { authorization: `Bearer ${OPERATOR}` };
let daemon: Daemon;
let db: pg.Client;
let browser: Browser;

beforeAll(async () => {
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(
    `create table ${tables.stock} (id text primary key, qty integer not null check (qty >= 0), version bigint not null)`,
  );
  const config = parseConfig(
    `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
auth:
  protect_ops: true
  tokens:
    - { name: operator, token: "${OPERATOR}", allow: { "*": admin } }
    - { name: reader, token: "${READER}", allow: { users: read } }
checker: { enabled: true, schedule: "0 0 1 1 *" }
keyspaces:
  users: { strategy: cache-aside, table: ${tables.users} }
  prices: { strategy: write-through, consistency: eventual, table: ${tables.prices} }
  stock:
    strategy: write-behind
    table: ${tables.stock}
    key_column: id
    columns: [id, qty]
    version_column: version
    write_behind: { flush_interval: 50ms, batch_size: 100, max_queue: 1000, max_attempts: 1 }
`,
    "ui.yaml",
  );
  daemon = await Daemon.start(
    { ...config, server: { ...config.server, port: 0 } },
    { log: silentLogger, status: { intervalMs: 250 } },
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  await db?.query(`drop table if exists ${Object.values(tables).join(", ")}`);
  await db?.query(`delete from sidecache_tombstones where tbl = any($1)`, [Object.values(tables)]);
  await db?.end();
  const redis = new Redis(REDIS_URL);
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

const qty = async (id: string) =>
  (await db.query(`select qty from ${tables.stock} where id = $1`, [id])).rows[0]?.qty as number | undefined;

describe("GET /ui over HTTP", () => {
  it("is guarded like the ops routes, its data like GET /v1/keyspaces", async () => {
    const none = await call(daemon.url, "GET", "/ui");
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Basic realm="sidecache"/);
    const basic = `Basic ${Buffer.from(`anyone:${READER}`).toString("base64")}`;
    const page = await call(daemon.url, "GET", "/ui", undefined, { authorization: basic });
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'sha256-/);
    // One file: nothing is loaded from elsewhere.
    const text = page.text.replaceAll("http://www.w3.org/2000/svg", "");
    expect(text).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)|https?:\/\/|@import|url\(/);
    const wrong = `Basic ${Buffer.from("x:not-a-token-at-all").toString("base64")}`;
    expect((await call(daemon.url, "GET", "/ui", undefined, { authorization: wrong })).status).toBe(401);

    expect((await call(daemon.url, "GET", "/ui/status")).status).toBe(401);
    // Basic credentials, which a browser sends by itself, do not open the data.
    expect((await call(daemon.url, "GET", "/ui/status", undefined, { authorization: basic })).status).toBe(
      401,
    );
    const reader = await call(daemon.url, "GET", "/ui/status", undefined, {
      authorization: `Bearer ${READER}`,
    });
    expect(reader.status).toBe(403);
    expect(reader.json()).toMatchObject({ error: { code: "forbidden" } });
    const ok = await call(daemon.url, "GET", "/ui/status", undefined, AUTH);
    expect(ok.status).toBe(200);
    expect((ok.json() as { keyspaces: { name: string }[] }).keyspaces.map((k) => k.name)).toEqual([
      "users",
      "prices",
      "stock",
    ]);
    expect((await call(daemon.url, "POST", "/ui/status", "{}", AUTH)).status).toBe(405);
    expect((await call(daemon.url, "GET", "/ui/other", undefined, AUTH)).status).toBe(404);
  });
});

describe("the status page in Chromium", () => {
  it("shows every keyspace, readiness, charts, checks and dead letters; drop and replay work from the page", async () => {
    // Traffic over a few intervals, a check, and two writes PostgreSQL refuses for good.
    for (let i = 0; i < 5; i++) {
      expect((await call(daemon.url, "PUT", `/v1/kv/users/u${i}`, { i }, AUTH)).status).toBe(200);
    }
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5; i++) await call(daemon.url, "GET", `/v1/kv/users/u${i}`, undefined, AUTH);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect((await call(daemon.url, "POST", "/v1/keyspaces/users/check", { full: true }, AUTH)).status).toBe(
      200,
    );
    const odd = "<b>odd</b>";
    for (const [id, n] of [
      ["short", -1],
      [odd, -2],
    ] as const) {
      const r = await call(daemon.url, "PUT", `/v1/kv/stock/${encodeURIComponent(id)}`, { id, qty: n }, AUTH);
      expect(r.status).toBe(202);
    }
    expect((await call(daemon.url, "POST", "/v1/keyspaces/stock/flush", undefined, AUTH)).status).toBe(200);
    await until(
      async () =>
        (
          (await call(daemon.url, "GET", "/v1/keyspaces/stock/dead-letters", undefined, AUTH)).json() as {
            dead_letters: unknown[];
          }
        ).dead_letters.length === 2,
      "two dead letters",
    );

    const context = await browser.newContext({
      httpCredentials: { username: "operator", password: OPERATOR },
      viewport: { width: 1280, height: 1000 },
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const failed: string[] = [];
    page.on("response", (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    try {
      const response = await page.goto(`${daemon.url}/ui`);
      expect(response!.status()).toBe(200);
      // The data needs the admin token: the page asks for it.
      await page.locator("#login").waitFor({ state: "visible" });
      await page.fill("#token", OPERATOR);
      await page.click("#login button");

      const sections = page.locator("section[data-keyspace]");
      await expect.poll(() => sections.count(), { timeout: 10_000 }).toBe(3);
      expect(await sections.evaluateAll((els) => els.map((e) => e.getAttribute("data-keyspace")))).toEqual([
        "users",
        "prices",
        "stock",
      ]);
      expect(await page.textContent('[data-field="readyz"]')).toBe("readyz: ok");
      expect(await page.locator("#login").isHidden()).toBe(true);

      const users = page.locator('section[data-keyspace="users"]');
      await expect
        .poll(() => users.locator("svg.chart polyline").count(), { timeout: 10_000 })
        .toBeGreaterThan(0);
      expect(await users.locator(".checks tbody tr").count()).toBe(1);
      expect(await users.locator(".checks tbody tr td").nth(1).textContent()).toBe("5");

      const stock = page.locator('section[data-keyspace="stock"]');
      const letters = stock.locator("tr[data-dead-letter]");
      await expect.poll(() => letters.count(), { timeout: 10_000 }).toBe(2);
      expect(await stock.locator('[data-field="dead-letters"]').textContent()).toBe("2");
      // A key full of markup is shown as text, never as markup.
      const oddRow = letters.filter({ hasText: odd });
      expect(await oddRow.count()).toBe(1);
      expect(await oddRow.locator("b").count()).toBe(0);

      mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

      // Drop the odd one (the page asks first), then fix the table and replay the other.
      page.once("dialog", (d) => void d.accept());
      await oddRow.locator('[data-action="drop"]').click();
      await expect.poll(() => letters.count(), { timeout: 10_000 }).toBe(1);
      expect(await page.textContent("#message")).toContain("Drop of <b>odd</b> done");

      await db.query(`alter table ${tables.stock} drop constraint ${tables.stock}_qty_check`);
      await letters.first().locator('[data-action="replay"]').click();
      await expect.poll(() => letters.count(), { timeout: 10_000 }).toBe(0);
      expect(await page.textContent("#message")).toMatch(/Replay of short done: \{"version":\d+\}/);
      expect((await call(daemon.url, "POST", "/v1/keyspaces/stock/flush", undefined, AUTH)).status).toBe(200);
      expect(await qty("short")).toBe(-1);
      expect(await qty(odd)).toBeUndefined();
      await expect.poll(() => stock.locator('[data-field="dead-letters"]').textContent()).toBe("0");
      expect(errors).toEqual([]);
      // Only the first poll, before the token was given, was refused.
      expect(failed).toEqual(["401 /ui/status"]);
    } finally {
      await context.close();
    }
  });
});
