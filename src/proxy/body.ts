/** Reading and checking request bodies: media type, size limit, strict UTF-8, valid JSON. */
import type { IncomingMessage } from "node:http";
import { InvalidJsonError, UnsupportedMediaTypeError, ValueTooLargeError } from "../errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Refuses bodies that declare a media type other than JSON; a missing Content-Type is taken as JSON. */
export function checkMediaType(req: IncomingMessage): void {
  const type = req.headers["content-type"];
  if (type === undefined) return;
  const base = type.split(";")[0]!.trim().toLowerCase();
  if (base !== "application/json" && !base.endsWith("+json")) throw new UnsupportedMediaTypeError(base);
}

/**
 * The body as text, or value_too_large as soon as it passes limit bytes (the rest is not read; the answer
 * closes the connection). Read with listeners rather than an async iterator: a promise per chunk is a
 * measurable part of a small write's cost.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new ValueTooLargeError(limit));
  if (req.readableEnded) return Promise.resolve("");
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: Error | null) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (err) {
        req.pause();
        return reject(err);
      }
      try {
        resolve(utf8.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
      } catch {
        reject(new InvalidJsonError("The body is not valid UTF-8."));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return done(new ValueTooLargeError(limit));
      chunks.push(chunk);
    };
    const onEnd = () => done(null);
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error("The connection closed before the body was read."));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Parses JSON text, turning every failure (syntax, nesting too deep) into invalid_json. */
export function parseJson(text: string): unknown {
  if (text.trim() === "") throw new InvalidJsonError("The body is empty; it must be a JSON value.");
  if (text.length > 2 * MAX_DEPTH && nestingOver(text, MAX_DEPTH)) {
    throw new InvalidJsonError(`The body is nested more than ${MAX_DEPTH} levels deep.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = err instanceof RangeError ? "it is nested too deeply" : (err as Error).message;
    throw new InvalidJsonError(`The body is not valid JSON: ${why}.`);
  }
}

/** Deeper values are refused: PostgreSQL's jsonb and every client's parser have limits of their own. */
export const MAX_DEPTH = 512;

/** Whether arrays and objects nest deeper than max, counting brackets outside strings. */
function nestingOver(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
