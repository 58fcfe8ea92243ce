/** Reads and validates the configuration file; every problem is a ConfigError naming file, line and path. */
import { readFile } from "node:fs/promises";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "../errors.js";
import { CHECKER_DEFAULTS } from "./defaults.js";
import { auditTableValue, DEFAULT_AUDIT_TABLE } from "../audit/config.js";
import { KEYSPACE_FIELDS, readKeyspace } from "./keyspace.js";
import { joinPath, Value } from "./node.js";
import { readAlerts, readAuth, readCache, readChecker, readLog, readServer, readStore } from "./sections.js";
import type { Config, KeyspaceConfig } from "./types.js";

const TOP_FIELDS = ["server", "cache", "store", "auth", "alerts", "checker", "log", "keyspaces"] as const;

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(e);
    throw new ConfigError(file, undefined, "", `can not be read: ${why}; give the file with --config`);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lines = new LineCounter();
  // Duplicate keys are reported by the reader, which knows their YAML path.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const message = (syntax.message.split("\n")[0] ?? syntax.code).replace(/ at line \d+, column \d+:?$/, "");
    const line = syntax.linePos?.[0].line;
    const path = pathAt(doc.contents, syntax.pos[0]);
    throw new ConfigError(file, line, path, `is not valid YAML: ${message}${colonHint(text, line)}`);
  }
  const root = new Value({ file, lines, doc, env }, "", doc.contents, 1);
  if (root.missing) root.fail("the file is empty; it needs at least a keyspaces: section");
  const f = root.fields(TOP_FIELDS);
  if (!f.keyspaces.given) f.keyspaces.fail("is required (it may be empty: a line with just keyspaces:)");

  const cache = readCache(f.cache);
  const checker = readChecker(f.checker, CHECKER_DEFAULTS);
  const keyspaces = new Map<string, KeyspaceConfig>();
  const tables = new Map<string, KeyspaceConfig>();
  for (const [name, value] of f.keyspaces.entries("a mapping of keyspace name to its settings")) {
    const ks = readKeyspace(name, value, { cacheUrl: cache.url, checker });
    const owner = tables.get(ks.table.toLowerCase());
    if (owner !== undefined && !ks.mapped) {
      value.fail(
        `uses table ${ks.table}, already used by keyspace ${owner.name}; a managed table holds one keyspace`,
      );
    }
    if (owner !== undefined && (owner.strategy === "write-behind" || ks.strategy === "write-behind")) {
      // The queue's versions come from Redis per keyspace: a write through the other keyspace would be
      // invisible to its pending writes, and its flush could be superseded in silence.
      value.fail(
        `uses table ${ks.table}, already used by keyspace ${owner.name}; a write-behind keyspace must be the only keyspace on its table`,
      );
    }
    tables.set(ks.table.toLowerCase(), ks);
    keyspaces.set(name, ks);
  }
  checkAuditTables(f.keyspaces, keyspaces, tables);

  return {
    file,
    server: readServer(f.server),
    cache,
    store: readStore(f.store, cache.url),
    auth: readAuth(f.auth, new Set(keyspaces.keys())),
    alerts: readAlerts(f.alerts),
    checker,
    log: readLog(f.log),
    keyspaces,
  };
}

/** An audit table is none of the keyspaces' tables nor one of sidecache's own. */
function checkAuditTables(
  section: Value,
  keyspaces: Map<string, KeyspaceConfig>,
  tables: Map<string, KeyspaceConfig>,
): void {
  for (const [name, value] of section.entries()) {
    const audit = keyspaces.get(name)?.audit;
    if (!audit) continue;
    const table = audit.table.toLowerCase();
    const owner = tables.get(table);
    const own = table.startsWith("sidecache_") && table !== DEFAULT_AUDIT_TABLE;
    if (owner || own) {
      auditTableValue(value.fields(KEYSPACE_FIELDS).audit).fail(
        owner
          ? `names table ${audit.table}, the table of keyspace ${owner.name}; the audit log needs a table of its own`
          : `names table ${audit.table}, a name sidecache keeps for its own tables; choose another (default ${DEFAULT_AUDIT_TABLE})`,
      );
    }
  }
}

/** The YAML path of the deepest key whose entry holds `offset`, so syntax errors name a field too. */
function pathAt(node: unknown, offset: number, path = ""): string {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      const start = (pair.key as { range?: number[] } | null)?.range?.[0];
      const end = (pair.value as { range?: number[] } | null)?.range?.[2] ?? start;
      if (key !== undefined && start !== undefined && end !== undefined && offset > start && offset <= end) {
        return pathAt(pair.value, offset, joinPath(path, key));
      }
    }
  }
  if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const range = (item as { range?: number[] } | null)?.range;
      if (range?.[0] !== undefined && range[2] !== undefined && offset >= range[0] && offset <= range[2]) {
        return pathAt(item, offset, joinPath(path, i));
      }
    }
  }
  return path;
}

/** `url: memory:` is the likeliest slip: YAML reads a trailing colon as the start of a mapping. */
function colonHint(text: string, line: number | undefined): string {
  const source = line === undefined ? undefined : text.split(/\r?\n/)[line - 1];
  if (source === undefined || !/:\s+[^\s"'#][^#]*:\s*(#.*)?$/.test(source)) return "";
  return '; a value that ends with ":" must be quoted, e.g. url: "memory:"';
}

/** One line for a person: what is wrong with the configuration, or the error as it is. */
export function describeConfigError(e: unknown): string {
  if (e instanceof ConfigError) return `invalid configuration: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}
