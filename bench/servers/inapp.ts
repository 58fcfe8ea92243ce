/**
 * The baseline users write today: cache-aside inside the application process, with ioredis and pg.
 * GET /v1/kv/{ks}/{key}: Redis GET; on a miss a PostgreSQL SELECT and a Redis SET with a TTL. No single
 * flight, no versions guard, no negative cache: what a hand-written helper usually is.
 * PUT /v1/kv/{ks}/{key}: what an application writing through its cache does, per request: one upsert in
 * autocommit (INSERT ... ON CONFLICT ... RETURNING the new version), then a Redis SET of the value.
 * Bench-only routes: POST /_warm {"ks", "keys"} loads keys in one query and caches them; GET /_stats.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Redis } from "ioredis";
import pg from "pg";
import type { InAppOptions } from "../lib/servers.js";

const options = JSON.parse(process.argv[2] ?? "{}") as InAppOptions;
const redis = new Redis(options.redisUrl);
const pool = new pg.Pool({
  connectionString: options.pgUrl,
  max: options.pool,
  application_name: "inapp-bench",
});
const stats = { hits: 0, misses: 0, dbReads: 0 };

const cacheKey = (ks: string, key: string) => `${options.prefix}:${ks}:${key}`;

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  for (const name in headers) res.setHeader(name, headers[name]!);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

async function get(ks: string, table: string, key: string, res: ServerResponse): Promise<void> {
  const cached = await redis.get(cacheKey(ks, key));
  if (cached !== null) {
    stats.hits++;
    const colon = cached.indexOf(":");
    send(res, 200, cached.slice(colon + 1), { "x-cache": "HIT", etag: `"${cached.slice(0, colon)}"` });
    return;
  }
  stats.misses++;
  stats.dbReads++;
  const r = await pool.query<{ value: string; version: string }>(
    `select "value"::text as value, "version" from "${table}" where "key" = $1`,
    [key],
  );
  const row = r.rows[0];
  if (!row) {
    send(res, 404, '{"error":{"code":"not_found","message":"No value."}}');
    return;
  }
  await redis.set(cacheKey(ks, key), `${row.version}:${row.value}`, "PX", options.ttlMs);
  send(res, 200, row.value, { "x-cache": "MISS", etag: `"${row.version}"` });
}

async function put(ks: string, table: string, key: string, req: IncomingMessage, res: ServerResponse) {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  const r = await pool.query<{ version: string }>(
    `insert into "${table}" as t ("key", "value", "version", "updated_at") values ($1, $2::jsonb, 1, now())
     on conflict ("key") do update
       set "value" = excluded."value", "version" = t."version" + 1, "updated_at" = excluded."updated_at"
     returning "version"`,
    [key, text],
  );
  const version = r.rows[0]!.version;
  await redis.set(cacheKey(ks, key), `${version}:${text}`, "PX", options.ttlMs);
  send(res, 200, `{"version":${version}}`);
}

async function warm(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  const { ks, keys } = JSON.parse(text) as { ks: string; keys: string[] };
  const table = options.tables[ks]!;
  const r = await pool.query<{ key: string; value: string; version: string }>(
    `select "key", "value"::text as value, "version" from "${table}" where "key" = any($1::text[])`,
    [keys],
  );
  const multi = redis.pipeline();
  for (const row of r.rows)
    multi.set(cacheKey(ks, row.key), `${row.version}:${row.value}`, "PX", options.ttlMs);
  await multi.exec();
  send(res, 200, JSON.stringify({ warmed: r.rows.length }));
}

const server = createServer((req, res) => {
  const url = req.url ?? "/";
  const m = /^\/v1\/kv\/([^/?]+)\/([^/?]+)$/.exec(url);
  let work: Promise<void>;
  if (m && req.method === "GET") {
    const ks = decodeURIComponent(m[1]!);
    const table = options.tables[ks];
    work = table ? get(ks, table, decodeURIComponent(m[2]!), res) : Promise.resolve(send(res, 404, "{}"));
  } else if (m && req.method === "PUT") {
    const ks = decodeURIComponent(m[1]!);
    const table = options.tables[ks];
    work = table
      ? put(ks, table, decodeURIComponent(m[2]!), req, res)
      : Promise.resolve(send(res, 404, "{}"));
  } else if (url === "/_warm" && req.method === "POST") {
    work = warm(req, res);
  } else if (url === "/_stats") {
    work = Promise.resolve(send(res, 200, JSON.stringify(stats)));
  } else {
    work = Promise.resolve(send(res, 404, "{}"));
  }
  work.catch((err: unknown) => {
    if (!res.headersSent) send(res, 503, JSON.stringify({ error: String(err) }));
    else res.destroy();
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${(server.address() as { port: number }).port}\n`);
});
process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  void Promise.allSettled([pool.end(), redis.quit()]).then(() => process.exit(0));
});
