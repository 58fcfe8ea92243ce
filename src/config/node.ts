/**
 * A reader over the YAML syntax tree that knows where each value came from (file, line, YAML path), so
 * every check can fail with a ConfigError that points at it.
 */
import { isAlias, isMap, isScalar, isSeq, Scalar, type Document, type LineCounter } from "yaml";
import { ConfigError } from "../errors.js";
import { substituteEnv } from "./env.js";
import { DURATION_FORMS, formatDuration, formatSize, parseDuration, parseSize, SIZE_FORMS } from "./units.js";

export interface Source {
  file: string;
  lines: LineCounter;
  doc: Document;
  env: NodeJS.ProcessEnv;
}

const SIMPLE_KEY = /^[A-Za-z0-9_-]+$/;

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  if (!SIMPLE_KEY.test(key)) return `${parent}[${JSON.stringify(key)}]`;
  return parent ? `${parent}.${key}` : key;
}

/** A value as shown in a message: short, and JSON so that strings are visibly strings. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

interface StrOptions {
  /** what is allowed, for messages ("a host name or IP address") */
  expect: string;
  def?: string;
  /** returns a problem, or undefined when the value is fine */
  check?: (value: string) => string | undefined;
  /** never repeat the value in a message (tokens, URLs that may carry passwords) */
  secret?: boolean;
}

interface NumOptions {
  min: number;
  max?: number;
  def?: number;
}

interface UnitOptions {
  def?: number;
  /** smallest allowed value (ms or bytes); 0 by default */
  min?: number;
  /** whether 0 itself is refused */
  positive?: boolean;
}

export class Value {
  constructor(
    private readonly src: Source,
    readonly path: string,
    private readonly node: unknown,
    /** the line of the key (or of the parent, when the field is absent) */
    private readonly keyLine: number | undefined,
  ) {}

  /** Whether the field is written at all (`ttl:` with nothing after it counts as written). */
  get given(): boolean {
    return this.node !== undefined && this.node !== null;
  }

  /** Absent, or written with no value: the default applies. */
  get missing(): boolean {
    const n = this.resolved();
    return n === undefined || n === null || (isScalar(n) && n.value === null);
  }

  /** Whether the value is written as a mapping (as opposed to a scalar or a list). */
  get isMapping(): boolean {
    return isMap(this.resolved());
  }

  get line(): number | undefined {
    const n = this.resolved();
    if ((isMap(n) || isSeq(n)) && this.keyLine !== undefined) return this.keyLine;
    return this.lineAt((n as { range?: [number, number, number] } | undefined)?.range?.[0]) ?? this.keyLine;
  }

  fail(problem: string): never {
    throw new ConfigError(this.src.file, this.line, this.path, problem);
  }

  /** A mapping whose keys must all be among `allowed`; gives a reader for each allowed field. */
  fields<K extends string>(allowed: readonly K[]): Record<K, Value> {
    const entries = this.entries(`a mapping with the fields ${allowed.join(", ")}`);
    for (const [key, value] of entries) {
      if (!(allowed as readonly string[]).includes(key)) {
        throw new ConfigError(
          this.src.file,
          value.keyLine,
          value.path,
          `is not a known field; allowed fields here: ${allowed.join(", ")}`,
        );
      }
    }
    const out = {} as Record<K, Value>;
    for (const key of allowed) {
      out[key] = entries.get(key) ?? new Value(this.src, joinPath(this.path, key), undefined, this.line);
    }
    return out;
  }

  /** A mapping with any keys (keyspace names, allow lists), in file order; duplicate keys refused. */
  entries(expect = "a mapping (key: value lines)"): Map<string, Value> {
    const out = new Map<string, Value>();
    if (this.missing) return out;
    const n = this.resolved();
    if (!isMap(n)) this.fail(`must be ${expect}`);
    for (const pair of n.items) {
      const key = isAlias(pair.key) ? pair.key.resolve(this.src.doc) : pair.key;
      const keyLine = this.lineAt((key as { range?: [number, number, number] } | null)?.range?.[0]);
      if (!isScalar(key) || (typeof key.value !== "string" && typeof key.value !== "number")) {
        throw new ConfigError(this.src.file, keyLine, this.path, "has a key that is not a plain name");
      }
      const name = String(key.value);
      const path = joinPath(this.path, name);
      const first = out.get(name);
      if (first) {
        const where = first.keyLine !== undefined ? ` (first on line ${first.keyLine})` : "";
        throw new ConfigError(
          this.src.file,
          keyLine,
          path,
          `is given twice${where}; each key may appear once`,
        );
      }
      out.set(name, new Value(this.src, path, pair.value, keyLine));
    }
    return out;
  }

  /** A list; absent means empty. */
  items(expect: string): Value[] {
    if (this.missing) return [];
    const n = this.resolved();
    if (!isSeq(n)) this.fail(`must be a list of ${expect}`);
    return n.items.map((item, i) => new Value(this.src, joinPath(this.path, i), item, this.line));
  }

  str(o: StrOptions): string {
    const v = this.scalar(o.expect);
    if (v === undefined) return o.def ?? this.fail(`is required; it must be ${o.expect}`);
    if (typeof v !== "string") this.fail(`must be ${o.expect}${o.secret ? "" : `; got ${show(v)}`}`);
    const problem = o.check?.(v);
    if (problem !== undefined) this.fail(problem);
    return v;
  }

  oneOf<T extends string>(values: readonly T[], def?: T): T {
    const expect = `one of ${values.join(", ")}`;
    const v = this.scalar(expect);
    if (v === undefined) return def ?? this.fail(`is required; it must be ${expect}`);
    if (!(values as readonly unknown[]).includes(v)) this.fail(`must be ${expect}; got ${show(v)}`);
    return v as T;
  }

  bool(def: boolean): boolean {
    const v = this.scalar("true or false");
    if (v === undefined) return def;
    if (typeof v !== "boolean") this.fail(`must be true or false; got ${show(v)}`);
    return v;
  }

  int(o: NumOptions): number {
    return this.number(o, true);
  }

  num(o: NumOptions): number {
    return this.number(o, false);
  }

  /** A duration in milliseconds; plain numbers are refused, since a reader can not tell ms from s. */
  duration(o: UnitOptions = {}): number {
    const bounds = this.unitBounds(o, formatDuration);
    const v = this.scalar(`a duration: ${DURATION_FORMS}`);
    if (v === undefined) return o.def ?? this.fail(`is required; it must be a duration: ${DURATION_FORMS}`);
    const plain = typeof v === "number" || (typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v));
    if (plain) {
      const n = String(v).trim();
      this.fail(`is a plain number (${n}); write it with a unit (ms, s, m, h or d), e.g. ${n}ms or ${n}s`);
    }
    const ms = typeof v === "string" ? parseDuration(v) : undefined;
    if (ms === undefined) this.fail(`must be a duration, ${DURATION_FORMS}; got ${show(v)}`);
    if (!bounds.ok(ms)) this.fail(`must be ${bounds.text}; got ${show(v)}`);
    return ms;
  }

  /** A size in bytes. */
  size(o: UnitOptions = {}): number {
    const bounds = this.unitBounds(o, formatSize);
    const v = this.scalar(`a size: ${SIZE_FORMS}`);
    if (v === undefined) return o.def ?? this.fail(`is required; it must be a size: ${SIZE_FORMS}`);
    if (typeof v === "number")
      this.fail(`is a plain number (${show(v)}); write it with a unit: ${SIZE_FORMS}`);
    const bytes = typeof v === "string" ? parseSize(v) : undefined;
    if (bytes === undefined) this.fail(`must be a size, ${SIZE_FORMS}; got ${show(v)}`);
    if (!bounds.ok(bytes)) this.fail(`must be ${bounds.text}; got ${show(v)}`);
    return bytes;
  }

  private number(o: NumOptions, integer: boolean): number {
    const kind = integer ? "an integer" : "a number";
    const range = o.max !== undefined ? `from ${o.min} to ${o.max}` : `of at least ${o.min}`;
    const expect = `${kind} ${range}`;
    const v = this.scalar(expect);
    if (v === undefined) return o.def ?? this.fail(`is required; it must be ${expect}`);
    const ok =
      typeof v === "number" &&
      Number.isFinite(v) &&
      (!integer || Number.isInteger(v)) &&
      v >= o.min &&
      (o.max === undefined || v <= o.max);
    if (!ok) this.fail(`must be ${expect}; got ${show(v)}`);
    return v as number;
  }

  private unitBounds(
    o: UnitOptions,
    format: (n: number) => string,
  ): { ok: (n: number) => boolean; text: string } {
    const min = o.min ?? 0;
    if (o.positive && min === 0) return { ok: (n) => n > 0, text: `more than ${format(0)}` };
    return { ok: (n) => n >= min, text: `at least ${format(min)}` };
  }

  /** The scalar value, environment references replaced; undefined when missing. */
  private scalar(expect: string): unknown {
    if (this.missing) return undefined;
    const n = this.resolved();
    if (!isScalar(n)) this.fail(`must be ${expect}, not a ${isMap(n) ? "mapping" : "list"}`);
    const v: unknown = n.value;
    if (typeof v !== "string" || !v.includes("${")) return v;
    const text = substituteEnv(v, this.src.env, (problem) => this.fail(problem));
    // An unquoted `port: ${PORT:-7070}` reads as YAML would read the substituted text: a number.
    return n.type === Scalar.PLAIN ? plainScalar(text) : text;
  }

  private resolved(): unknown {
    return isAlias(this.node) ? this.node.resolve(this.src.doc) : this.node;
  }

  private lineAt(offset: number | undefined): number | undefined {
    return offset === undefined ? undefined : this.src.lines.linePos(offset).line;
  }
}

function plainScalar(text: string): unknown {
  if (/^[-+]?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}
