/**
 * One cache entry as one string: `<kind><version>:<incarnation>:<freshUntil>:<value text>`, for example
 * `v1712345678901234:k3x9f2a1q0zz:1712345679000:{"a":1}`, `t1712345678901234:k3x9f2a1q0zz:0:` (tombstone)
 * or `a17::1712345:` (absent, no incarnation).
 *
 * The kind is one letter and the version comes right after it in decimal, then the incarnation of the cache
 * the entry was written for (src/cache/incarnation.ts; empty for entries the write-behind queue writes), so
 * the Lua of setIfNewer reads all three from the first bytes of the entry (GETRANGE) without touching the
 * value. The value text follows the third colon verbatim and runs to the end, so it may hold anything.
 *
 * This file is the one place that knows the layout: the Lua helpers below are spliced into every script
 * that reads or writes an entry (src/cache/redis.ts, src/writebehind/scripts.ts).
 */
import type { CacheEntry, EntryKind } from "./adapter.js";

const KIND_TO_CHAR: Record<EntryKind, string> = { value: "v", absent: "a", tombstone: "t" };
const CHAR_TO_KIND: Record<string, EntryKind | undefined> = { v: "value", a: "absent", t: "tombstone" };

/** An incarnation is up to this many characters of [0-9a-z]. */
export const INCARNATION_MAX = 12;
const INCARNATION = /^[0-9a-z]{0,12}$/;

/** The longest head `<kind><version>:<incarnation>:` can be: letter, sign, 16 digits, colon, id, colon. */
export const HEAD_MAX_BYTES = 20 + INCARNATION_MAX;

const MAX_VERSION = 2 ** 53;

/**
 * Lua: `entryHead(key)` returns kind, version and incarnation of the entry stored at key, or nil when
 * nothing (or something that is not an entry) is there; `entryText(kind, version, inc, freshUntil, value)`
 * lays one out. Versions are Lua numbers (doubles), exact up to 2^53, printed with %.0f.
 */
export const ENTRY_LUA = `
local function entryHead(ckey)
  local head = redis.call('GETRANGE', ckey, 0, ${HEAD_MAX_BYTES - 1})
  local kind, digits, inc = string.match(head, '^(%a)(%-?%d+):(%w*):')
  if not digits then return nil, 0, nil end
  return kind, tonumber(digits), inc
end
local function entryText(kind, version, inc, fresh, value)
  return kind .. string.format('%.0f', version) .. ':' .. inc .. ':' .. fresh .. ':' .. (value or '')
end
`;

/** The letter an entry of this kind starts with. */
export function kindLetter(kind: EntryKind): string {
  return KIND_TO_CHAR[kind];
}

/** An integer no larger than 2^53 in magnitude: exact as a double, so Lua compares it exactly too. */
export function isVersion(v: number): boolean {
  return Number.isInteger(v) && Math.abs(v) <= MAX_VERSION;
}

export function assertEntry(entry: CacheEntry): void {
  if (!isVersion(entry.version)) {
    throw new TypeError(`A cache entry version must be an integer up to 2^53, not ${entry.version}.`);
  }
  if (Number.isNaN(entry.freshUntil))
    throw new TypeError("A cache entry's freshUntil must be a number, not NaN.");
  if (entry.kind === "value" && typeof entry.value !== "string") {
    throw new TypeError("A cache entry of kind value needs its JSON text.");
  }
}

export function encodeEntry(entry: CacheEntry, incarnation = ""): string {
  assertEntry(entry);
  if (!INCARNATION.test(incarnation)) throw new TypeError(`Not an incarnation: ${incarnation}`);
  const head = `${KIND_TO_CHAR[entry.kind]}${entry.version}:${incarnation}:${entry.freshUntil}:`;
  return entry.kind === "value" ? head + entry.value : head;
}

/** The incarnation an encoded entry was written for ("" for none), or null when the text is not an entry. */
export function incarnationOf(text: string): string | null {
  const a = text.indexOf(":", 1);
  if (a < 2) return null;
  const b = text.indexOf(":", a + 1);
  return b < 0 || b - a - 1 > INCARNATION_MAX ? null : text.slice(a + 1, b);
}

/** The entry, or null when the text is not one (written by something else): treated as nothing cached. */
export function decodeEntry(text: string): CacheEntry | null {
  const kind = CHAR_TO_KIND[text.charAt(0)];
  if (kind === undefined) return null;
  const a = text.indexOf(":", 1);
  if (a < 2) return null;
  const b = text.indexOf(":", a + 1);
  if (b < 0 || !INCARNATION.test(text.slice(a + 1, b))) return null;
  const c = text.indexOf(":", b + 1);
  if (c < 0 || b + 1 === c) return null;
  const version = Number(text.slice(1, a));
  const freshUntil = Number(text.slice(b + 1, c));
  if (!isVersion(version) || Number.isNaN(freshUntil)) return null;
  if (kind !== "value") return { kind, version, freshUntil };
  return { kind, version, freshUntil, value: text.slice(c + 1) };
}
