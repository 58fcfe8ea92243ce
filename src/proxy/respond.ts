/** Writing answers in the protocol's error shape. */
import type { ServerResponse } from "node:http";
import { SidecacheError } from "../errors.js";

export function sendJson(
  res: ServerResponse,
  status: number,
  body: string,
  headers?: Record<string, string>,
): void {
  const flat: string[] = [];
  if (headers) for (const name in headers) flat.push(name, headers[name]!);
  sendJsonWith(res, status, body, flat);
}

/**
 * A JSON answer whose headers (name, value, name, value, ...) go out in one writeHead with the content
 * type and length (appended to the array given): no per-header validation and merging on the hot paths.
 */
export function sendJsonWith(res: ServerResponse, status: number, body: string, headers: string[]): void {
  headers.push("content-type", "application/json", "content-length", String(Buffer.byteLength(body)));
  res.writeHead(status, headers);
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers?: Record<string, string>): void {
  res.writeHead(status, headers);
  res.end();
}

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** Sends any error; ones that are not SidecacheErrors become 500 internal without details. */
export function sendError(res: ServerResponse, err: unknown): number {
  if (err instanceof SidecacheError) {
    sendJson(res, err.status, errorBody(err.code, err.message), err.headers);
    return err.status;
  }
  sendJson(res, 500, errorBody("internal", "An unexpected error happened; it has been logged."));
  return 500;
}
