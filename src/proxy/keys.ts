/** Keys and keyspace names as they arrive in the URL: one percent-decoded path segment. */
import { InvalidKeyError } from "../errors.js";

export const MAX_KEY_BYTES = 512;

/** Decodes one path segment into a key, or throws invalid_key saying what is wrong. */
export function decodeKey(segment: string): string {
  // A segment without escapes is the key as it is: its characters are the URL's bytes (no surrogates),
  // and at 170 characters or fewer it can not exceed 512 bytes of UTF-8.
  if (segment.length > 0 && segment.length <= 170 && !segment.includes("%")) {
    if (segment === "." || segment === "..") checkKey(segment);
    return segment;
  }
  let key: string;
  try {
    // decodeURIComponent refuses percent-escapes that do not form valid UTF-8.
    key = segment.includes("%") ? decodeURIComponent(segment) : segment;
  } catch {
    throw new InvalidKeyError("The key is not valid percent-encoded UTF-8.");
  }
  checkKey(key);
  return key;
}

/** Checks a key that arrived decoded (in a JSON body). */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string") throw new InvalidKeyError("Keys must be strings.");
  if (key.length === 0) throw new InvalidKeyError("The key is empty; keys are 1 to 512 bytes of UTF-8.");
  if (key === "." || key === "..") {
    throw new InvalidKeyError(`The key ${JSON.stringify(key)} is refused: URL clients rewrite it.`);
  }
  if (hasLoneSurrogate(key)) throw new InvalidKeyError("The key is not valid UTF-8.");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > MAX_KEY_BYTES) {
    throw new InvalidKeyError(`The key is ${bytes} bytes of UTF-8; the limit is ${MAX_KEY_BYTES}.`);
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s);
}
