/**
 * The shipped rules against the real thing: Debian's Prometheus scrapes a daemon with
 * deploy/prometheus/sidecache-rules.yaml loaded and alerts to Debian's Alertmanager, which the daemon's
 * own webhook (format alertmanager) also posts to. Rows are changed in PostgreSQL behind the cache, a
 * check finds them stale, SidecacheInconsistent fires in Prometheus, and the daemon's alert is seen in
 * Alertmanager firing, then resolved after the next clean check.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../src/daemon.js";
import { clients, daemonWith, dropPrefix, PG_URL, receiver, REDIS_URL, until } from "./checker-support.js";
import { call } from "./support/http.js";
import { query, startAlertmanager, startPrometheus, type Service } from "./support/prometheus.js";

const tag = `t${randomBytes(4).toString("hex")}`;
const prefix = `sc_prom_${tag}`;
const table = `prom_users_${tag}`;
const wbTable = `prom_wb_${tag}`;
const { redis, pg } = clients();
let daemon: Daemon;
let am: Service;
let prom: Service;
let hook: Awaited<ReturnType<typeof receiver>>;

interface AmAlert {
  labels: Record<string, string>;
  status: { state: string };
}
interface AmNotification {
  status: "firing" | "resolved";
  alerts: { status: string; labels: Record<string, string> }[];
}

beforeAll(async () => {
  hook = await receiver();
  am = await startAlertmanager(`${hook.url}/notify`);
  daemon = await daemonWith(
    `
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
alerts:
  webhooks:
    - { url: "${am.url}/api/v2/alerts", format: alertmanager }
checker: { enabled: false, alert_ratio: 0.05 }
keyspaces:
  users: { strategy: cache-aside, table: ${table}, ttl: 1h }
  orders: { strategy: write-behind, table: ${wbTable}, ttl: 1h }
`,
    { limits: { recheckDelayMs: 20 }, alerts: { baseDelayMs: 50 } },
  );
  prom = await startPrometheus({
    targets: [new URL(daemon.url).host],
    ruleFiles: [resolve("deploy/prometheus/sidecache-rules.yaml")],
    alertmanager: am.url,
  });
}, 60_000);

afterAll(async () => {
  await prom?.stop();
  await daemon?.stop();
  await am?.stop();
  await hook?.close();
  for (const t of [table, wbTable]) await pg.query(`drop table if exists ${t}`);
  await pg.query(`delete from sidecache_tombstones where tbl = any($1)`, [[table, wbTable]]);
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await pg.end();
});

async function amAlerts(): Promise<AmAlert[]> {
  const r = await fetch(`${am.url}/api/v2/alerts?filter=alertname%3D%22SidecacheInconsistent%22`);
  return (await r.json()) as AmAlert[];
}

const notifications = () => hook.got.map((g) => g.body as AmNotification);

describe("alert rules with Prometheus and Alertmanager", () => {
  it("every series the rules read is scraped at 0 before anything happens", async () => {
    const kinds = await until(async () => {
      const r = await query(prom, `sidecache_consistency_checked_total{keyspace="users"}`);
      return r.length === 5 ? r : undefined;
    }, "the first scrape");
    expect(kinds!.map((s) => s.labels.kind).sort()).toEqual([
      "consistent",
      "mismatch",
      "missing_write",
      "orphan",
      "stale",
    ]);
    expect(kinds!.every((s) => s.value === 0)).toBe(true);
    for (const expr of [
      `sidecache_consistency_inconsistent_total{keyspace="users",kind="stale"}`,
      `sidecache_consistency_alert_ratio{keyspace="users"}`,
      `sidecache_cache_hits_total{keyspace="users"}`,
      `sidecache_cache_misses_total{keyspace="users"}`,
      `sidecache_requests_total{keyspace="users",op="get",status="503"}`,
      `sidecache_writebehind_queue_depth{keyspace="orders"}`,
      `sidecache_writebehind_dead_letters{keyspace="orders"}`,
      `sidecache_requests_total{keyspace="orders",op="put",status="429"}`,
    ]) {
      const r = await query(prom, expr);
      expect(r, expr).toHaveLength(1);
    }
    expect((await query(prom, `sidecache_consistency_alert_ratio{keyspace="users"}`))[0]!.value).toBe(0.05);
    // Rules loaded and healthy.
    const rules = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string }[] }[] };
    };
    const all = rules.data.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.name)).toContain("SidecacheInconsistent");
    expect(all.filter((r) => r.health === "err")).toEqual([]);
  });

  it("a check that finds 5 of 30 keys stale fires SidecacheInconsistent in Prometheus and the daemon's alert in Alertmanager, then resolves", async () => {
    for (let i = 0; i < 30; i++) {
      expect((await call(daemon.url, "PUT", `/v1/kv/users/u${i}`, { i })).status).toBe(200);
      expect((await call(daemon.url, "GET", `/v1/kv/users/u${i}`)).headers["x-cache"]).toBe("MISS");
    }
    // Behind the cache's back: five rows change in PostgreSQL, their cached entries stay as they were.
    await pg.query(
      `update ${table} set value = '{"changed": true}', version = version + 1000 where key = any($1)`,
      [["u1", "u2", "u3", "u4", "u5"]],
    );
    expect((await call(daemon.url, "GET", "/v1/kv/users/u1")).json()).toEqual({ i: 1 });
    // Prometheus has the counters at their values before the check.
    await until(
      async () => (await query(prom, `sidecache_cache_hits_total{keyspace="users"} > 0`)).length === 1,
      "a scrape after the reads",
    );

    const r = await call(daemon.url, "POST", "/v1/keyspaces/users/check", { full: true });
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toMatchObject({ sampled: 30, inconsistent: 5, by_kind: { stale: 5 } });

    const firing = await until(
      async () => {
        const res = await fetch(`${prom.url}/api/v1/alerts`);
        const body = (await res.json()) as {
          data: { alerts: { labels: Record<string, string>; state: string; value: string }[] };
        };
        return body.data.alerts.find(
          (a) => a.labels.alertname === "SidecacheInconsistent" && a.labels.keyspace === "users",
        );
      },
      "SidecacheInconsistent in Prometheus",
      15_000,
    );
    expect(firing!.state).toBe("firing");
    expect(Number(firing!.value)).toBeCloseTo(5 / 30, 5);
    const [ratio] = await query(
      prom,
      `keyspace:sidecache_consistency_inconsistent_ratio:15m{keyspace="users"}`,
    );
    expect(ratio!.value).toBeCloseTo(5 / 30, 5);

    // The daemon's own alert (labelled service=sidecache) and Prometheus's, both active in Alertmanager.
    const active = await until(
      async () => {
        const a = await amAlerts();
        return a.some((x) => x.labels.service === "sidecache") && a.some((x) => !x.labels.service)
          ? a
          : undefined;
      },
      "both alerts in Alertmanager",
      15_000,
    );
    const own = active!.find((a) => a.labels.service === "sidecache")!;
    expect(own.labels).toMatchObject({ keyspace: "users", severity: "critical" });
    expect(own.status.state).toBe("active");
    await until(
      () =>
        notifications().some(
          (n) => n.status === "firing" && n.alerts.some((a) => a.labels.service === "sidecache"),
        ),
      "Alertmanager's firing notification",
      15_000,
    );

    // The check repaired by invalidating: the next check is clean and the daemon resolves its alert.
    const again = await call(daemon.url, "POST", "/v1/keyspaces/users/check", { full: true });
    expect(again.json()).toMatchObject({ sampled: 30, inconsistent: 0 });
    await until(
      async () => !(await amAlerts()).some((a) => a.labels.service === "sidecache"),
      "the daemon's alert resolved in Alertmanager",
      15_000,
    );
    const resolved = await until(
      () =>
        notifications().find(
          (n) => n.status === "resolved" && n.alerts.some((a) => a.labels.service === "sidecache"),
        ),
      "Alertmanager's resolved notification",
      15_000,
    );
    expect(resolved!.alerts[0]!.labels.keyspace).toBe("users");
    // Prometheus's rule looks back 15 minutes: it still fires, as documented.
    expect((await amAlerts()).some((a) => !a.labels.service && a.labels.keyspace === "users")).toBe(true);
  });
});
