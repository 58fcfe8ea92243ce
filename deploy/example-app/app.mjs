/* global process, fetch, Buffer, console */
// A small application in front of sidecache: GET and PUT /users/{id} through its key/value protocol,
// POST /events/{id} through a write-behind keyspace. Node 20, no dependencies.
import { createServer } from "node:http";

const SIDECACHE = process.env.SIDECACHE_URL ?? "http://127.0.0.1:7070";
const TOKEN = process.env.APP_TOKEN ?? "";
const PORT = Number(process.env.PORT ?? 8080);

async function sidecache(method, path, body) {
  const res = await fetch(`${SIDECACHE}${path}`, {
    method,
    headers: {
      ...(TOKEN ? { authorization: `Bearer ${TOKEN}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, cache: res.headers.get("x-cache"), text: await res.text() };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
}

createServer(async (req, res) => {
  try {
    const m = /^\/(users|events)\/([^/]+)$/.exec(req.url ?? "");
    if (!m) {
      res
        .writeHead(404, { "content-type": "application/json" })
        .end('{"error":"use /users/{id} or /events/{id}"}');
      return;
    }
    const [, keyspace, id] = m;
    const path = `/v1/kv/${keyspace}/${id}`;
    const body = req.method === "PUT" || req.method === "POST" ? await readBody(req) : undefined;
    const method = req.method === "POST" ? "PUT" : req.method;
    const r = await sidecache(method, path, body);
    res.writeHead(r.status, {
      "content-type": "application/json",
      ...(r.cache ? { "x-cache": r.cache } : {}),
    });
    res.end(r.text);
  } catch (err) {
    res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ error: String(err) }));
  }
}).listen(PORT, "0.0.0.0", () => console.log(`example app on :${PORT}, sidecache at ${SIDECACHE}`));
