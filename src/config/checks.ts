/** Checks on single values; each returns a problem that says what is allowed, or undefined. */
import { validate as validateCron } from "node-cron";

export const KEYSPACE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export const IDENTIFIER_RULE =
  "a SQL identifier: a letter or _, then letters, digits or _, at most 63 characters";

export function checkKeyspaceName(name: string): string | undefined {
  if (KEYSPACE_NAME.test(name)) return undefined;
  return "is not a valid keyspace name; use 1 to 64 letters, digits, _ or -";
}

export function checkColumn(name: string): string | undefined {
  return IDENTIFIER.test(name) ? undefined : `must be ${IDENTIFIER_RULE}; got ${JSON.stringify(name)}`;
}

export function checkTable(name: string): string | undefined {
  if (IDENTIFIER.test(name)) return undefined;
  const schema = name.includes(".")
    ? " (tables are found on the connection's search_path: for another schema add ?options=-c%20search_path%3Dapp to store.url)"
    : "";
  return `must be ${IDENTIFIER_RULE}${schema}; got ${JSON.stringify(name)}`;
}

export function checkCron(schedule: string): string | undefined {
  const fields = schedule.trim().split(/\s+/).length;
  const allowed =
    'a cron schedule of 5 fields (minute hour day-of-month month day-of-week, e.g. "*/1 * * * *") or 6 with a leading seconds field';
  if (fields !== 5 && fields !== 6)
    return `has ${fields} field${fields === 1 ? "" : "s"}; it must be ${allowed}`;
  return validateCron(schedule) ? undefined : `is not a valid cron schedule; it must be ${allowed}`;
}

/** Only the scheme is repeated in messages: the rest of a URL may hold a password. */
function scheme(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  return m ? `a ${m[1]}: URL` : "a value without a scheme";
}

function parsesAsUrl(url: string): boolean {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}

export function checkCacheUrl(url: string): string | undefined {
  const allowed = "memory: (the embedded cache), redis://HOST:PORT or rediss://HOST:PORT";
  if (url === "memory:") return undefined;
  if (/^rediss?:\/\//.test(url))
    return parsesAsUrl(url) ? undefined : `is not a valid URL; it must be ${allowed}`;
  return `must be ${allowed}; got ${scheme(url)}`;
}

export function checkClusterNode(url: string): string | undefined {
  const allowed = "a node URL redis://HOST:PORT or rediss://HOST:PORT";
  if (/^rediss?:\/\/[^/]/.test(url) && parsesAsUrl(url)) return undefined;
  return `must be ${allowed}; got ${scheme(url)}`;
}

export function checkStoreUrl(url: string): string | undefined {
  const allowed =
    "postgres://USER@HOST:PORT/DB, postgresql://..., pglite:PATH (embedded, on disk) or pglite:memory";
  if (/^pglite:./.test(url)) return undefined;
  if (/^postgres(ql)?:\/\//.test(url))
    return parsesAsUrl(url) ? undefined : `is not a valid URL; it must be ${allowed}`;
  return `must be ${allowed}; got ${scheme(url)}`;
}

export function checkWebhookUrl(url: string): string | undefined {
  if (/^https?:\/\//.test(url) && parsesAsUrl(url)) return undefined;
  return `must be an http:// or https:// URL; got ${scheme(url)}`;
}
