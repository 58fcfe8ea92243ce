/**
 * One cache entry as one string: `<kind><version>:<freshUntil>:<value text>`, for example
 * `v1712345678901234:1712345679000:{"a":1}`, `t1712345678901234:0:` (tombstone) or `a17:1712345:` (absent).
 *
 * The kind is one letter and the version comes right after it in decimal, so the Lua of setIfNewer reads
 * both from the first few bytes of the entry (GETRANGE) without touching the value. The value text follows
 * the second colon verbatim and runs to the end, so it may contain anything, colons included.
 */
import type { CacheEntry, EntryKind } from "./adapter.js";

const KIND_TO_CHAR: Record<EntryKind, string> = { value: "v", absent: "a", tombstone: "t" };
const CHAR_TO_KIND: Record<string, EntryKind | undefined> = { v: "value", a: "absent", t: "tombstone" };

/** The longest head `<kind><version>:` can be: one letter, a sign, 16 digits (2^53), the colon. */
export const HEAD_MAX_BYTES = 19;

const MAX_VERSION = 2 ** 53;

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

export function encodeEntry(entry: CacheEntry): string {
  assertEntry(entry);
  const head = `${KIND_TO_CHAR[entry.kind]}${entry.version}:${entry.freshUntil}:`;
  return entry.kind === "value" ? head + entry.value : head;
}

/** The entry, or null when the text is not one (written by something else): treated as nothing cached. */
export function decodeEntry(text: string): CacheEntry | null {
  const kind = CHAR_TO_KIND[text.charAt(0)];
  if (kind === undefined) return null;
  const a = text.indexOf(":", 1);
  if (a < 2) return null;
  const b = text.indexOf(":", a + 1);
  if (b < 0) return null;
  const version = Number(text.slice(1, a));
  const freshUntil = Number(text.slice(a + 1, b));
  if (!isVersion(version) || Number.isNaN(freshUntil) || a + 1 === b) return null;
  if (kind !== "value") return { kind, version, freshUntil };
  return { kind, version, freshUntil, value: text.slice(b + 1) };
}
