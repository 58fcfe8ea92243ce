/** Versions and ETags: a read's or a write's version is what If-Match takes back. */

/** Anything a version can be taken from: a number, an ETag, or a previous read or write. */
export type VersionLike = number | string | { readonly version: number };

/** The ETag of a version: `"42"`. */
export function etag(version: number): string {
  return `"${version}"`;
}

const ETAG = /^\s*(?:W\/)?"(\d{1,16})"\s*$/;

/** The version in an ETag (`"42"` or `W/"42"`), or undefined when it holds none. */
export function parseEtag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = ETAG.exec(value);
  return m ? Number(m[1]) : undefined;
}

/** The If-Match header for a version, an ETag, or a previous read or write. */
export function ifMatch(v: VersionLike): string {
  if (typeof v === "number") return versionTag(v);
  if (typeof v === "string") {
    const n = parseEtag(v) ?? (/^\d{1,16}$/.test(v) ? Number(v) : undefined);
    if (n === undefined) throw new TypeError(`Not a version or an ETag: ${JSON.stringify(v)}.`);
    return etag(n);
  }
  return versionTag(v.version);
}

function versionTag(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`Not a version: ${n}.`);
  return etag(n);
}
