/** The checker's pure parts (confidence bounds, classification) and alert delivery against a real receiver. */
import { describe, expect, it } from "vitest";
import { Alerts } from "../src/checker/alerts.js";
import { classify, sameValue } from "../src/checker/classify.js";
import { LocalCoordination } from "../src/checker/lock.js";
import { nines, upperBound } from "../src/checker/stats.js";
import type { CheckReport } from "../src/checker/types.js";
import { silentLogger } from "../src/log.js";
import type { TelemetryEvent } from "../src/telemetry.js";
import { receiver, until } from "./checker-support.js";

describe("confidence", () => {
  it("does not let 100 clean keys claim perfection", () => {
    expect(upperBound(0, 100)).toBeCloseTo(0.0295, 4);
    expect(nines(upperBound(0, 100))).toBeCloseTo(1.53, 2);
    expect(upperBound(0, 100_000)).toBeCloseTo(3e-5, 6);
  });

  it("matches the exact Clopper-Pearson bound with findings", () => {
    // one-sided 95%: 1 of 100 -> 0.0466, 5 of 100 -> 0.1023, 50 of 100 -> 0.5864
    expect(upperBound(1, 100)).toBeCloseTo(0.0466, 3);
    expect(upperBound(5, 100)).toBeCloseTo(0.1023, 3);
    expect(upperBound(50, 100)).toBeCloseTo(0.5864, 3);
    expect(upperBound(100, 100)).toBe(1);
    expect(nines(0.001)).toBe(3);
    expect(nines(0)).toBeNull();
  });
});

describe("classification", () => {
  const now = Date.now();
  const value = (version: number, v: string, freshUntil = now + 60_000) =>
    ({ kind: "value", version, value: v, freshUntil }) as const;
  const row = (version: number, v: string) => ({ key: "k", version, value: v });

  it("tells each kind apart", () => {
    const c = (entry: never | null, r: ReturnType<typeof row> | null, pending?: number) =>
      classify({ entry, row: r, pending }, { now });
    expect(c(value(5, '{"a":1,"b":2}') as never, row(5, '{"b": 2, "a": 1}'))).toBe("consistent");
    expect(c(value(5, "1") as never, row(6, "2"))).toBe("stale");
    expect(c(value(7, "1") as never, row(6, "2"))).toBe("missing_write");
    expect(c(value(6, "1") as never, row(6, "2"))).toBe("mismatch");
    expect(c(value(6, "1") as never, null)).toBe("orphan");
    expect(c({ kind: "absent", version: 0, freshUntil: now + 1000 } as never, row(6, "2"))).toBe("stale");
    expect(c({ kind: "absent", version: 3, freshUntil: now + 1000 } as never, null)).toBe("consistent");
    // no claim to readers: tombstones, expired entries, nothing
    expect(c({ kind: "tombstone", version: 9, freshUntil: 0 } as never, row(6, "2"))).toBe("consistent");
    expect(c(value(1, "1", now - 1) as never, row(6, "2"))).toBe("consistent");
    expect(c(null, row(6, "2"))).toBe("consistent");
    // a queued write: skipped
    expect(c(value(9, "1") as never, row(6, "2"), 9)).toBe("skip");
  });

  it("compares a mapped table's objects on its value columns, a missing field as null", () => {
    expect(
      sameValue('{"status":"new"}', '{"id": 4, "status": "new", "total": null}', ["status", "total"]),
    ).toBe(true);
    expect(
      sameValue('{"status":"new"}', '{"id": 4, "status": "paid", "total": null}', ["status", "total"]),
    ).toBe(false);
  });
});

function report(ratio: number): CheckReport {
  return {
    keyspace: "users",
    sampled: 100,
    inconsistent: Math.round(ratio * 100),
    by_kind: ratio > 0 ? { stale: Math.round(ratio * 100) } : {},
    repaired: 0,
    ratio,
    started_at: new Date().toISOString(),
    duration_ms: 3,
    mode: "sample",
    repair: "report",
    skipped: 0,
    ratio_upper_95: 0.05,
    nines: { estimate: null, lower_95: 1.3 },
    findings: [],
    repair_errors: 0,
  };
}

describe("alerts", () => {
  it("retries a failing webhook with backoff without holding the checker, and sends no storm", async () => {
    const hook = await receiver();
    const events: TelemetryEvent[] = [];
    const alerts = new Alerts(
      [{ url: `${hook.url}/hook`, format: "json" }],
      new LocalCoordination(),
      { emit: (e) => events.push(e) },
      silentLogger,
      { baseDelayMs: 20, maxDelayMs: 100, attempts: 20 },
    );
    try {
      hook.status.code = 503;
      const started = Date.now();
      for (let i = 0; i < 20; i++) await alerts.observe(report(0.5), 0.01);
      expect(Date.now() - started).toBeLessThan(500);
      await new Promise((r) => setTimeout(r, 150));
      expect(hook.got).toHaveLength(0);
      hook.status.code = 200;
      await until(() => hook.got.length === 1 && alerts.idle, "the firing alert");
      await alerts.observe(report(0), 0.01);
      await alerts.observe(report(0), 0.01);
      await until(() => hook.got.length === 2 && alerts.idle, "the resolved alert");
      await new Promise((r) => setTimeout(r, 100));
      expect(hook.got.map((g) => (g.body as { status: string }).status)).toEqual(["firing", "resolved"]);
      expect(events.filter((e) => e.type === "consistency_alert")).toHaveLength(2);
    } finally {
      alerts.stop();
      await hook.close();
    }
  });

  it("gives up after its attempts and logs; an unreachable webhook never throws into the checker", async () => {
    const events: TelemetryEvent[] = [];
    const alerts = new Alerts(
      [{ url: "http://127.0.0.1:9/nothing", format: "alertmanager" }],
      new LocalCoordination(),
      { emit: (e) => events.push(e) },
      silentLogger,
      { baseDelayMs: 5, maxDelayMs: 10, attempts: 3 },
    );
    await alerts.observe(report(1), 0.5);
    await until(() => alerts.idle, "delivery given up");
    expect(events).toEqual([
      { type: "consistency_alert", keyspace: "users", state: "firing", outcome: "failed" },
    ]);
    alerts.stop();
  });
});
