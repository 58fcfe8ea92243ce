/**
 * How Redis keys and values map to sidecache's. A key `KEYSPACE:KEY` names KEY of keyspace KEYSPACE (split at
 * the first `:`), under the key rules of the HTTP protocol. A value that is a JSON object or array is stored
 * as that JSON; any other UTF-8 text is stored as a JSON string and read back byte for byte. Bytes that are
 * not UTF-8 are refused: PostgreSQL's jsonb holds text only.
 */
import { isUtf8 } from "node:buffer";
import { InvalidJsonError, InvalidKeyError, InvalidRequestError, ValueTooLargeError } from "../errors.js";
import { MAX_DEPTH } from "../proxy/body.js";
import { checkKey } from "../proxy/keys.js";

export interface RespKey {
  keyspace: string;
  key: string;
}

const COLON = 0x3a;
const NUL = 0x00;
/** A NUL character escaped in JSON text, not itself preceded by an escaping backslash. */
const ESCAPED_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

export function splitKey(raw: Buffer): RespKey {
  if (!isUtf8(raw)) throw new InvalidRequestError("The key is not valid UTF-8; keys are UTF-8 text.");
  const colon = raw.indexOf(COLON);
  if (colon < 0) {
    throw new InvalidKeyError(
      `The key ${show(raw)} names no keyspace: write it KEYSPACE:KEY, as in users:alice.`,
    );
  }
  if (raw.indexOf(NUL) >= 0) {
    throw new InvalidRequestError("The key holds a NUL character, which PostgreSQL's text can not store.");
  }
  const key = raw.toString("utf8", colon + 1);
  checkKey(key);
  return { keyspace: raw.toString("utf8", 0, colon), key };
}

/** The JSON text to store for a value given over RESP. */
export function storedJson(raw: Buffer, maxValue: number): string {
  if (raw.length > maxValue) throw new ValueTooLargeError(maxValue);
  if (!isUtf8(raw)) throw new InvalidRequestError("The value is not valid UTF-8; values are UTF-8 text.");
  if (raw.indexOf(NUL) >= 0) {
    throw new InvalidRequestError("The value holds a NUL character, which PostgreSQL's jsonb can not store.");
  }
  const text = raw.toString("utf8");
  const json = isJsonContainer(text) ? text : JSON.stringify(text);
  // Escaping (quotes, backslashes, control characters) may take a value past the limit.
  if (json !== text && Buffer.byteLength(json) > maxValue) throw new ValueTooLargeError(maxValue);
  return json;
}

/** The bytes a GET answers for stored JSON text: a string's own text, any other value as JSON. */
export function respValue(json: string): string {
  if (json.charCodeAt(0) !== 0x22) return json;
  // Without a backslash the string has no escapes: its text is what lies between the quotes.
  return json.indexOf("\\") < 0 ? json.slice(1, -1) : (JSON.parse(json) as string);
}

function isJsonContainer(text: string): boolean {
  const first = text.charCodeAt(0);
  const last = text.charCodeAt(text.length - 1);
  const container = (first === 0x7b && last === 0x7d) || (first === 0x5b && last === 0x5d);
  if (!container) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof parsed !== "object" || parsed === null) return false;
  if (depthOver(parsed, MAX_DEPTH)) {
    throw new InvalidJsonError(`The value is JSON nested more than ${MAX_DEPTH} levels deep.`);
  }
  if (ESCAPED_NUL.test(text)) {
    throw new InvalidRequestError("The value holds a NUL character, which PostgreSQL's jsonb can not store.");
  }
  return true;
}

function depthOver(value: unknown, max: number): boolean {
  if (max <= 0) return true;
  if (typeof value !== "object" || value === null) return false;
  for (const v of Array.isArray(value) ? value : Object.values(value)) {
    if (typeof v === "object" && v !== null && depthOver(v, max - 1)) return true;
  }
  return false;
}

function show(raw: Buffer): string {
  const text = raw.toString("utf8");
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}
