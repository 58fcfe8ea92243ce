/**
 * What PromQL expressions select, parsed with Prometheus's own grammar (@prometheus-io/lezer-promql), and
 * a reader of the text exposition, so tests can say whether a live daemon exports what rules and
 * dashboards query.
 */
import { parser } from "@prometheus-io/lezer-promql";

export interface Matcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
}

interface Node {
  name: string;
  from: number;
  to: number;
  getChild(name: string): Node | null;
  getChildren(name: string): Node[];
}

/** The vector selectors of an expression; throws on a syntax error. Grafana's variables are made parseable. */
export function selectors(expr: string): Selector[] {
  const text = expr.replace(/\$__(rate_)?interval|\$__range/g, "5m");
  const tree = parser.parse(text);
  const out: Selector[] = [];
  let error: number | undefined;
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) error ??= ref.from;
      if (ref.name !== "VectorSelector") return;
      const node = ref.node as unknown as Node;
      const id = node.getChild("Identifier");
      const matchers: Matcher[] = [];
      for (const m of node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []) {
        const label = slice(text, m.getChild("LabelName")!);
        const op = slice(text, m.getChild("MatchOp")!) as Matcher["op"];
        const value = JSON.parse(slice(text, m.getChild("StringLiteral")!).replace(/^'|'$/g, '"')) as string;
        matchers.push({ label, op, value });
      }
      out.push({ metric: id ? slice(text, id) : "", matchers });
    },
  });
  if (error !== undefined) throw new Error(`PromQL syntax error at ${error} in: ${expr}`);
  return out;
}

function slice(text: string, n: Node): string {
  return text.slice(n.from, n.to);
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
}

/** The samples of a text exposition (names as written: histograms give _bucket, _sum and _count). */
export function samples(exposition: string): Sample[] {
  const out: Sample[] = [];
  for (const line of exposition.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = JSON.parse(`"${l[2]}"`);
    out.push({ name: m[1]!, labels });
  }
  return out;
}

/** Whether a sample matches a selector, as Prometheus does (regexes anchored; absent label = ""). */
export function matches(s: Sample, sel: Selector, ignore: (m: Matcher) => boolean = () => false): boolean {
  if (sel.metric && s.name !== sel.metric) return false;
  return sel.matchers.every((m) => {
    if (ignore(m)) return true;
    if (m.label === "__name__") return matchValue(s.name, m);
    return matchValue(s.labels[m.label] ?? "", m);
  });
}

function matchValue(v: string, m: Matcher): boolean {
  switch (m.op) {
    case "=":
      return v === m.value;
    case "!=":
      return v !== m.value;
    case "=~":
      return new RegExp(`^(?:${m.value})$`).test(v);
    case "!~":
      return !new RegExp(`^(?:${m.value})$`).test(v);
  }
}
