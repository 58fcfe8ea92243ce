/**
 * The request duration histogram, counted in plain arrays per series and read by prom-client's registry
 * at a scrape: prom-client's own `observe` converts, validates and hashes the labels on every call, a
 * measurable part of a cache hit's cost. It exports what a prom-client Histogram exports (cumulative
 * `_bucket` series with `le`, `_sum`, `_count`), so the exposition is unchanged.
 */
import type { Registry } from "prom-client";

type Labels = Record<string, string>;

export class DurationSeries {
  /** per bucket, not cumulative; the last one is +Inf */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

interface Value {
  labels: Record<string, string | number>;
  sharedLabels?: Labels;
  value: number;
  metricName: string;
}

export class DurationHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly all = new Map<string, DurationSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The series of these labels (made on first use, exported at 0 until observed). */
  series(labels: Labels): DurationSeries {
    const id = this.labelNames.map((n) => labels[n] ?? "").join("\u0000");
    let s = this.all.get(id);
    if (!s) this.all.set(id, (s = new DurationSeries(labels, this.bounds)));
    return s;
  }

  reset(): void {
    this.all.clear();
  }

  /** As the registry formats it: the series' labels as shared labels, `le` of its own. */
  async getForPromString(): Promise<{
    name: string;
    help: string;
    type: string;
    values: Value[];
    aggregator: string;
  }> {
    const values: Value[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: bucket });
      });
      values.push(
        { labels: { le: "+Inf" }, sharedLabels: s.labels, value: s.count, metricName: bucket },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's get() gives it (getMetricsAsJSON): every label on the value itself. */
  async get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => ({
      labels: { ...v.sharedLabels, ...v.labels },
      value: v.value,
      metricName: v.metricName,
    }));
    return data;
  }
}
