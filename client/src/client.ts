/**
 * The client: one undici pool per daemon, a typed handle per keyspace, retries and deadlines per call.
 * Which method and path each call uses comes from the OpenAPI description's types (ROUTES below), so a
 * route the description does not have does not compile.
 */
import { EventEmitter } from "node:events";
import { Pool, type Dispatcher } from "undici";
import {
  BadRequestError,
  ConnectionError,
  errorFromAnswer,
  MethodNotAllowedError,
  SidecacheError,
  TimeoutError,
  VersionMismatchError,
} from "./errors.js";
import { etag, ifMatch, parseEtag, type VersionLike } from "./etag.js";
import {
  DEFAULT_RETRY,
  parseRetryAfter,
  retryDelay,
  retryOptions,
  wait,
  type RetryOptions,
} from "./retry.js";
import type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type CacheStatus = Schemas["CacheStatus"];
export type CacheTier = Schemas["CacheTier"];
export type CheckRequest = Schemas["CheckRequest"];
export type CheckReport = Schemas["CheckReport"];
export type KeyspaceStatus = Schemas["KeyspaceStatus"];
export type DeadLetter = Schemas["DeadLetter"];
export type Strategy = Schemas["Strategy"];
export type WarmRequest = Schemas["WarmRequest"];
export type WarmProgress = Schemas["WarmProgress"];
export type AuditRecord = Schemas["AuditRecord"];
export type AuditPage = Schemas["AuditPage"];

/** Which audit records to read (GET /v1/keyspaces/{keyspace}/audit). */
export interface AuditQuery {
  key?: string;
  /** an RFC 3339 time, a Date, or a duration back from now such as "24h" */
  since?: string | Date;
  until?: string | Date;
  limit?: number;
  /** the next_cursor of the previous page */
  cursor?: string;
}
type IfNoneMatch = NonNullable<operations["putValue"]["parameters"]["header"]>["If-None-Match"];

/** The JSON body of an operation's answer of a given status, as the description has it. */
type Body<
  O extends keyof operations,
  S extends keyof operations[O]["responses"],
> = operations[O]["responses"][S] extends {
  content: { "application/json": infer B };
}
  ? B
  : never;

type Verb = "get" | "put" | "post" | "delete";
/** The [method, path] pairs under which the description lists operation O. */
type RouteOf<O extends keyof operations> = {
  [P in keyof paths]: {
    [M in Verb]: paths[P][M] extends operations[O] ? readonly [Uppercase<M>, P] : never;
  }[Verb];
}[keyof paths];

const ROUTES = {
  getValue: ["GET", "/v1/kv/{keyspace}/{key}"],
  putValue: ["PUT", "/v1/kv/{keyspace}/{key}"],
  deleteValue: ["DELETE", "/v1/kv/{keyspace}/{key}"],
  mget: ["POST", "/v1/kv/{keyspace}/_mget"],
  mset: ["POST", "/v1/kv/{keyspace}/_mset"],
  listKeyspaces: ["GET", "/v1/keyspaces"],
  flush: ["POST", "/v1/keyspaces/{keyspace}/flush"],
  check: ["POST", "/v1/keyspaces/{keyspace}/check"],
  listDeadLetters: ["GET", "/v1/keyspaces/{keyspace}/dead-letters"],
  dropDeadLetter: ["DELETE", "/v1/keyspaces/{keyspace}/dead-letters/{id}"],
  replayDeadLetter: ["POST", "/v1/keyspaces/{keyspace}/dead-letters/{id}/replay"],
  warm: ["POST", "/v1/keyspaces/{keyspace}/warm"],
  warmProgress: ["GET", "/v1/keyspaces/{keyspace}/warm"],
  listAudit: ["GET", "/v1/keyspaces/{keyspace}/audit"],
} as const satisfies { [O in keyof operations]?: RouteOf<O> };

/** The operations the client calls. */
export type ClientOperation = keyof typeof ROUTES;
export const CLIENT_OPERATIONS = Object.keys(ROUTES) as ClientOperation[];

export interface ClientOptions {
  /** the daemon, as in http://127.0.0.1:7070 */
  url: string | URL;
  /** a bearer token of the daemon's `auth.tokens` */
  token?: string;
  /** deadline of each call in ms, retries and their waits included (default 10000; 0: none) */
  timeoutMs?: number;
  /** retry rules for 429, 503 and refused connections (see retry.ts); false: never retry */
  retry?: Partial<RetryOptions> | false;
  /** connections to the daemon (default 32); ignored when `dispatcher` is given */
  connections?: number;
  /** an undici dispatcher of your own (Pool, Agent, a mock); the client does not close it */
  dispatcher?: Dispatcher;
  /** keys per _mget request: larger mget calls are split (default 1000, the daemon's `server.max_batch`) */
  maxBatch?: number;
}

export interface CallOptions {
  /** aborts the call (the signal's reason is thrown) */
  signal?: AbortSignal;
  /** this call's deadline in ms, instead of the client's */
  timeoutMs?: number;
  /** this call's retry rules, instead of the client's; false: no retry */
  retry?: Partial<RetryOptions> | false;
  /** sent as X-Request-Id, so the daemon's log lines of this call can be found */
  requestId?: string;
}

export interface ReadOptions extends CallOptions {
  /** not answered from the daemon's near cache (sends Cache-Control: no-cache); Redis still answers */
  skipNear?: boolean;
}

export interface WriteOptions extends CallOptions {
  /** write only if the key is at this version: a number, an ETag, or a previous read or write */
  ifMatch?: VersionLike;
  /** "*": write only if the key is absent */
  ifNoneMatch?: IfNoneMatch;
}

/** A value read, with its version. */
export interface Entry<T> {
  key: string;
  value: T;
  version: number;
  /** the version as an ETag: `"42"` */
  etag: string;
  /** HIT (cache), MISS (PostgreSQL) or STALE (an expired entry served while PostgreSQL fails) */
  cache: CacheStatus;
  /** which tier answered: L1 (the daemon's near cache), L2 (Redis or the in-process cache), DB (PostgreSQL) */
  tier: CacheTier;
}

export interface WriteResult {
  key: string;
  version: number;
  etag: string;
  /** true for write-behind (202): durable in the queue, PostgreSQL later */
  queued: boolean;
}

export interface DeleteResult {
  key: string;
  /** true for write-behind (202) */
  queued: boolean;
  /** the delete's version, for write-behind */
  version?: number;
}

export interface MsetResult {
  versions: Map<string, number>;
  queued: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

interface Init {
  params?: Record<string, string>;
  /** the path, already filled in (the hot calls keep their keyspace's prefix) */
  path?: string;
  query?: string;
  body?: string;
  headers?: Record<string, string>;
  /** a status >= 400 handed back instead of thrown */
  pass?: number;
}

export class SidecacheClient {
  readonly timeoutMs: number;
  readonly retry: RetryOptions;
  readonly maxBatch: number;
  private readonly origin: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly headers: Record<string, string>;
  private readonly jsonHeaders: Record<string, string>;

  constructor(options: ClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`The daemon's url must be http or https, not ${url.protocol}`);
    }
    this.origin = url.origin;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = retryOptions(options.retry, DEFAULT_RETRY);
    this.maxBatch = options.maxBatch ?? 1000;
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Pool(this.origin, { connections: options.connections ?? 32 });
    this.headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
    this.jsonHeaders = { ...this.headers, "content-type": "application/json" };
  }

  /** A handle on one keyspace; T is the type of its values (not checked: the daemon takes any JSON). */
  keyspace<T = unknown>(name: string): Keyspace<T> {
    return new Keyspace<T>(this, name);
  }

  /** Each keyspace: strategy, queue depth, hit ratio, last check (admin). */
  async keyspaces(options: CallOptions = {}): Promise<Record<string, KeyspaceStatus>> {
    const a = await this.call("listKeyspaces", {}, options);
    return json<Body<"listKeyspaces", 200>>(a).keyspaces;
  }

  /** Drains a write-behind keyspace's queue: answers once PostgreSQL holds every write acknowledged before. */
  async flush(keyspace: string, options: CallOptions = {}): Promise<number> {
    const a = await this.call("flush", { params: { keyspace } }, options);
    return json<Body<"flush", 200>>(a).flushed;
  }

  /** Runs the consistency check now: a sample (`{sample: n}`) or every key (`{full: true}`). */
  async check(keyspace: string, request: CheckRequest = {}, options: CallOptions = {}): Promise<CheckReport> {
    const a = await this.call("check", { params: { keyspace }, body: JSON.stringify(request) }, options);
    return json<Body<"check", 200>>(a);
  }

  /** Write-behind writes PostgreSQL refused for good, oldest first. */
  async deadLetters(
    keyspace: string,
    page: { count?: number; after?: string } = {},
    options: CallOptions = {},
  ): Promise<DeadLetter[]> {
    const q = new URLSearchParams();
    if (page.count !== undefined) q.set("count", String(page.count));
    if (page.after !== undefined) q.set("after", page.after);
    const query = q.size ? `?${q}` : undefined;
    const a = await this.call("listDeadLetters", { params: { keyspace }, query }, options);
    return json<Body<"listDeadLetters", 200>>(a).dead_letters;
  }

  /** Queues a dead letter again with a fresh version; its new version. */
  async replayDeadLetter(keyspace: string, id: string, options: CallOptions = {}): Promise<number> {
    const a = await this.call("replayDeadLetter", { params: { keyspace, id } }, options);
    return json<Body<"replayDeadLetter", 202>>(a).version;
  }

  /** Drops a dead letter for good. */
  async dropDeadLetter(keyspace: string, id: string, options: CallOptions = {}): Promise<void> {
    await this.call("dropDeadLetter", { params: { keyspace, id } }, options);
  }

  /**
   * Starts warming a keyspace's cache (from its `warm:` section, or `{from, limit}`) and answers the run's
   * progress at once; while a run goes on, answers that run's progress and starts nothing.
   */
  async warm(keyspace: string, request: WarmRequest = {}, options: CallOptions = {}): Promise<WarmProgress> {
    const a = await this.call("warm", { params: { keyspace }, body: JSON.stringify(request) }, options);
    return json<Body<"warm", 202>>(a);
  }

  /** The progress of the keyspace's last warming run, or null when none ran since the daemon started. */
  async warmProgress(keyspace: string, options: CallOptions = {}): Promise<WarmProgress | null> {
    const a = await this.call("warmProgress", { params: { keyspace }, pass: 404 }, options);
    if (a.status === 404) {
      const err = failure(a);
      if (err.code === "not_found") return null;
      throw err;
    }
    return json<Body<"warmProgress", 200>>(a);
  }

  /** One page of the keyspace's audit log, newest first; `next_cursor` continues it (null on the last page). */
  async audit(keyspace: string, query: AuditQuery = {}, options: CallOptions = {}): Promise<AuditPage> {
    const q = new URLSearchParams();
    if (query.key !== undefined) q.set("key", query.key);
    for (const name of ["since", "until"] as const) {
      const t = query[name];
      if (t !== undefined) q.set(name, t instanceof Date ? t.toISOString() : t);
    }
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.cursor !== undefined) q.set("cursor", query.cursor);
    const a = await this.call(
      "listAudit",
      { params: { keyspace }, query: q.size ? `?${q}` : undefined },
      options,
    );
    return json<Body<"listAudit", 200>>(a);
  }

  /** Closes the connections (only those of the client's own pool). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** One call: attempts, retries and their waits, all within the call's deadline. */
  async call(op: ClientOperation, init: Init, options: CallOptions): Promise<Answer> {
    const [method, template] = ROUTES[op];
    const path = (init.path ?? fill(template, init.params)) + (init.query ?? "");
    const retry = options.retry === undefined ? this.retry : retryOptions(options.retry, this.retry);
    const read = method === "GET" || op === "mget";
    let headers = init.body === undefined ? this.headers : this.jsonHeaders;
    if (init.headers || options.requestId) {
      headers = { ...headers, ...init.headers };
      if (options.requestId) headers["x-request-id"] = options.requestId;
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const user = options.signal;
    if (user?.aborted) throw user.reason;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    // An EventEmitter, not an AbortSignal: undici takes either, and a listener on an AbortSignal costs
    // more than the rest of a call to a cached key (see docs: npm run bench:client).
    let abort: EventEmitter | undefined;
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const onUserAbort = () => abort!.emit("abort");
    if (timeoutMs > 0 || user) abort = new EventEmitter();
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        expired = true;
        abort!.emit("abort");
      }, timeoutMs);
    }
    user?.addEventListener("abort", onUserAbort, { once: true });
    let waited = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        let err: SidecacheError;
        try {
          const res = await this.dispatcher.request({
            origin: this.origin,
            path,
            method,
            headers,
            body: init.body,
            signal: abort,
          });
          const text = await res.body.text();
          const answer: Answer = { status: res.statusCode, headers: res.headers, text };
          if (res.statusCode < 400 || res.statusCode === init.pass) return answer;
          err = failure(answer);
        } catch (e) {
          if (user?.aborted) throw user.reason;
          if (expired) throw timedOut(timeoutMs, attempt, e);
          err = asClientError(e);
        }
        err.attempts = attempt;
        const delay = retryDelay(err, attempt, waited, retry, read, deadline - Date.now());
        if (delay === undefined) throw err;
        try {
          await wait(delay, abort);
        } catch (e) {
          if (user?.aborted) throw user.reason;
          throw timedOut(timeoutMs, attempt, e);
        }
        waited += delay;
      }
    } finally {
      clearTimeout(timer);
      user?.removeEventListener("abort", onUserAbort);
    }
  }
}

/** A keyspace's values, typed T. */
export class Keyspace<T = unknown> {
  /** /v1/kv/{keyspace}/ of this keyspace */
  private readonly prefix: string;

  constructor(
    readonly client: SidecacheClient,
    readonly name: string,
  ) {
    this.prefix = fill(ROUTES.getValue[1], { keyspace: name, key: "" });
  }

  /** The value and its version, or null when the key is absent. */
  async get(key: string, options: ReadOptions = {}): Promise<Entry<T> | null> {
    const a = await this.client.call(
      "getValue",
      { path: this.at(key), pass: 404, headers: options.skipNear ? NO_CACHE : undefined },
      options,
    );
    if (a.status === 404) {
      const err = failure(a);
      if (err.code === "not_found") return null;
      throw err;
    }
    const version = parseEtag(header(a, "etag")) ?? 0;
    const cache = (header(a, "x-cache") ?? "MISS") as CacheStatus;
    return {
      key,
      value: JSON.parse(a.text) as T,
      version,
      etag: etag(version),
      cache,
      tier: tierOf(header(a, "x-cache-tier"), cache),
    };
  }

  /** Creates or replaces; with `ifMatch` only at that version, with `ifNoneMatch: "*"` only if absent. */
  async put(key: string, value: T, options: WriteOptions = {}): Promise<WriteResult> {
    const body = toJson(value);
    const a = await this.client.call(
      "putValue",
      { path: this.at(key), body, headers: conditions(options) },
      options,
    );
    const { version } = json<Body<"putValue", 200 | 202>>(a);
    return { key, version, etag: etag(version), queued: a.status === 202 };
  }

  /** Creates, only if the key is absent (If-None-Match: *): VersionMismatchError when it exists. */
  create(key: string, value: T, options: CallOptions = {}): Promise<WriteResult> {
    return this.put(key, value, { ...options, ifNoneMatch: "*" });
  }

  /** Deletes; an absent key is not an error. */
  async delete(key: string, options: WriteOptions = {}): Promise<DeleteResult> {
    const a = await this.client.call(
      "deleteValue",
      { path: this.at(key), headers: conditions(options) },
      options,
    );
    if (a.status !== 202) return { key, queued: false };
    return { key, queued: true, version: json<Body<"deleteValue", 202>>(a).version };
  }

  /**
   * Reads many keys: a value, or null for an absent key (and for a stored null), in the order asked.
   * More keys than the client's `maxBatch` are read in several requests.
   */
  async mget(keys: Iterable<string>, options: ReadOptions = {}): Promise<Map<string, T | null>> {
    const unique = [...new Set(keys)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += this.client.maxBatch) {
      chunks.push(unique.slice(i, i + this.client.maxBatch));
    }
    const answers = await Promise.all(
      chunks.map((chunk) => {
        const body: Schemas["MgetRequest"] = { keys: chunk };
        return this.client.call(
          "mget",
          {
            params: { keyspace: this.name },
            body: JSON.stringify(body),
            headers: options.skipNear ? NO_CACHE : undefined,
          },
          options,
        );
      }),
    );
    const out = new Map<string, T | null>();
    answers.forEach((a, i) => {
      const values = json<Body<"mget", 200>>(a).values;
      for (const k of chunks[i]!) out.set(k, Object.hasOwn(values, k) ? (values[k] as T | null) : null);
    });
    return out;
  }

  /** Writes many, all or nothing, in one request (never split: that would not be all or nothing). */
  async mset(items: Map<string, T> | Record<string, T>, options: CallOptions = {}): Promise<MsetResult> {
    const body: Schemas["MsetRequest"] = {
      items: items instanceof Map ? Object.fromEntries(items) : items,
    };
    const a = await this.client.call(
      "mset",
      { params: { keyspace: this.name }, body: toJson(body) },
      options,
    );
    const { versions } = json<Body<"mset", 200 | 202>>(a);
    return { versions: new Map(Object.entries(versions)), queued: a.status === 202 };
  }

  /**
   * Read, change, write back only if nobody wrote in between (If-Match, or If-None-Match: * for an absent
   * key); on a version mismatch, again from the read, up to `attempts` times (default 5).
   */
  async update(
    key: string,
    change: (current: T | undefined) => T,
    options: ReadOptions & { attempts?: number } = {},
  ): Promise<WriteResult & { value: T }> {
    const attempts = options.attempts ?? 5;
    for (let i = 1; ; i++) {
      const current = await this.get(key, options);
      const value = change(current?.value);
      const condition: WriteOptions = current ? { ifMatch: current } : { ifNoneMatch: "*" };
      try {
        return { ...(await this.put(key, value, { ...options, ...condition })), value };
      } catch (err) {
        if (!(err instanceof VersionMismatchError) || i >= attempts) throw err;
      }
    }
  }

  flush(options?: CallOptions): Promise<number> {
    return this.client.flush(this.name, options);
  }

  check(request?: CheckRequest, options?: CallOptions): Promise<CheckReport> {
    return this.client.check(this.name, request, options);
  }

  warm(request?: WarmRequest, options?: CallOptions): Promise<WarmProgress> {
    return this.client.warm(this.name, request, options);
  }

  warmProgress(options?: CallOptions): Promise<WarmProgress | null> {
    return this.client.warmProgress(this.name, options);
  }

  audit(query?: AuditQuery, options?: CallOptions): Promise<AuditPage> {
    return this.client.audit(this.name, query, options);
  }

  private at(key: string): string {
    return this.prefix + segment(key, "key");
  }
}

const NO_CACHE: Readonly<Record<string, string>> = { "cache-control": "no-cache" };

/** X-Cache-Tier; a daemon without a near cache that does not send it answered a MISS from DB, the rest from L2. */
function tierOf(value: string | undefined, cache: CacheStatus): CacheTier {
  if (value === "L1" || value === "L2" || value === "DB") return value;
  return cache === "MISS" ? "DB" : "L2";
}

function fill(template: string, params: Record<string, string> | undefined): string {
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (_, name: string) => segment(params[name]!, name));
}

function segment(value: string, name: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    const code = name === "key" ? "invalid_key" : "invalid_request";
    throw new BadRequestError(code, 0, `The ${name} is not valid UTF-8 (a lone surrogate).`);
  }
}

function conditions(options: WriteOptions): Record<string, string> | undefined {
  if (options.ifMatch === undefined && options.ifNoneMatch === undefined) return undefined;
  const h: Record<string, string> = {};
  if (options.ifMatch !== undefined) h["if-match"] = ifMatch(options.ifMatch);
  if (options.ifNoneMatch !== undefined) h["if-none-match"] = options.ifNoneMatch;
  return h;
}

function toJson(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError("The value is not JSON (undefined, a function or a symbol).");
  return text;
}

function header(a: Answer, name: string): string | undefined {
  const v = a.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function json<B>(a: Answer): B {
  try {
    return JSON.parse(a.text) as B;
  } catch {
    throw new SidecacheError(
      "unexpected_response",
      a.status,
      `The daemon's answer is not JSON (${a.status}).`,
      {
        requestId: header(a, "x-request-id"),
      },
    );
  }
}

function failure(a: Answer): SidecacheError {
  const err = errorFromAnswer(a.status, a.text, {
    requestId: header(a, "x-request-id"),
    retryAfterMs: parseRetryAfter(a.headers["retry-after"]),
  });
  if (err instanceof MethodNotAllowedError) {
    err.allow = (header(a, "allow") ?? "")
      .split(",")
      .map((m) => m.trim())
      .filter(Boolean);
  }
  return err;
}

function timedOut(timeoutMs: number, attempts: number, cause: unknown): TimeoutError {
  return new TimeoutError("timeout", 0, `No answer within the call's deadline of ${timeoutMs} ms.`, {
    attempts,
    cause,
  });
}

const NETWORK = /^(E[A-Z]+|UND_ERR_\w+)$/;

function asClientError(e: unknown): SidecacheError {
  if (e instanceof SidecacheError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !NETWORK.test(code)) throw e;
  return new ConnectionError(`Could not reach the daemon: ${(e as Error).message}`, {
    cause: e,
    refused: code === "ECONNREFUSED",
  });
}
