/** A raw HTTP client for tests: paths are sent byte for byte (fetch would normalise %2E and friends). */
import { request, type Agent } from "node:http";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

export function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const url = new URL(base);
  const payload =
    body === undefined
      ? undefined
      : typeof body === "string" || Buffer.isBuffer(body)
        ? body
        : JSON.stringify(body);
  const h: Record<string, string> = { ...headers };
  if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === "content-type")) {
    h["content-type"] = "application/json";
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers: h, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (payload !== undefined) req.end(payload);
    else req.end();
  });
}

/** Percent-encodes a key as one path segment. */
export const seg = (key: string): string => encodeURIComponent(key);

/** What a keep-alive sender answers: the status, the version in the ETag (0 without one), the body. */
export interface Sent {
  status: number;
  etag: number;
  text: string;
}

/**
 * A sender over a keep-alive agent, for tests that drive many concurrent writers (a fresh connection per
 * request, as `call` makes, would measure connection set-up); JSON bodies. With timeoutMs, a request that
 * gets no answer in that time fails.
 */
export function keepAliveSender(
  agent: Agent,
  timeoutMs?: number,
): (base: string, method: string, path: string, body?: unknown) => Promise<Sent> {
  return (base, method, path, body) => {
    const url = new URL(base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          agent,
          headers: payload ? { "content-type": "application/json" } : {},
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              etag: Number(String(res.headers.etag ?? '"0"').replace(/\D/g, "") || 0),
              text,
            }),
          );
        },
      );
      if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(payload);
    });
  };
}
