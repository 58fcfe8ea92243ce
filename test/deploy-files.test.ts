/**
 * The files of deploy/ against the daemon they deploy: every metric an alerting or recording rule or a
 * Grafana panel queries is one a live daemon (every strategy configured) exports, with label values it
 * really uses; the Compose file and the Kubernetes example parse, and their ports, paths, probes,
 * secrets and service names agree with each other and with the sidecache configuration they carry.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { parseConfig } from "../src/config/load.js";
import type { Daemon } from "../src/daemon.js";
import { clients, dropPrefix, PG_URL, REDIS_URL } from "./checker-support.js";
import { call } from "./support/http.js";
import { startDaemon, uniqueTag } from "./support/daemon.js";
import { matches, samples, selectors, type Matcher, type Sample, type Selector } from "./support/promql.js";

const DEPLOY = resolve("deploy");
const read = (p: string) => readFileSync(join(DEPLOY, p), "utf8");

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
const rules = (
  parse(read("prometheus/sidecache-rules.yaml")) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record!));

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(read("grafana/sidecache-dashboard.json")) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; definition?: string }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Dashboard queries by where they come from: panel targets, and the selectors inside label_values(). */
function dashboardQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    const m = /^label_values\((.+),\s*\w+\)$/.exec(v.definition ?? "");
    expect(m, `variable ${v.name}`).not.toBeNull();
    out.push({ where: `variable ${v.name}`, expr: m![1]! });
  }
  return out;
}

// Labels Prometheus adds at scrape time, and Grafana's variables, are not the daemon's to export.
const outsideDaemon = (m: Matcher) => m.label === "job" || m.label === "instance" || m.value.includes("$");

function unmatched(
  queries: { where: string; expr: string }[],
  exported: Sample[],
): { where: string; selector: Selector }[] {
  const missing: { where: string; selector: Selector }[] = [];
  for (const q of queries) {
    for (const sel of selectors(q.expr)) {
      if (recorded.has(sel.metric)) continue;
      if (!exported.some((s) => matches(s, sel, outsideDaemon)))
        missing.push({ where: q.where, selector: sel });
    }
  }
  return missing;
}

const tag = uniqueTag();
const prefix = `sc_deploy_${tag}`;
const tables = ["ca", "rt", "wts", "wte", "wa", "wb"].map((s) => `deploy_${s}_${tag}`);
const { redis, pg } = clients();
let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon(`
cache: { url: "${REDIS_URL}", prefix: ${prefix} }
store: { url: "${PG_URL}" }
checker: { enabled: true, schedule: "0 0 1 1 *" }
keyspaces:
  ca: { strategy: cache-aside, table: ${tables[0]} }
  rt: { strategy: read-through, table: ${tables[1]} }
  wts: { strategy: write-through, consistency: strict, table: ${tables[2]} }
  wte: { strategy: write-through, consistency: eventual, table: ${tables[3]} }
  wa: { strategy: write-around, table: ${tables[4]} }
  wb: { strategy: write-behind, table: ${tables[5]} }
`);
});

afterAll(async () => {
  await daemon?.stop();
  for (const t of tables) await pg.query(`drop table if exists ${t}`);
  await pg.query(`delete from sidecache_tombstones where tbl = any($1)`, [tables]);
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await pg.end();
});

async function exported(): Promise<Sample[]> {
  const r = await call(daemon.url, "GET", "/metrics");
  expect(r.status).toBe(200);
  return samples(r.text);
}

describe("rules and dashboard against a live daemon's /metrics", () => {
  it("every rule and panel expression parses as PromQL, and recorded series are defined before use", () => {
    const all = [...rules.map((r) => ({ where: r.alert ?? r.record!, expr: r.expr })), ...dashboardQueries()];
    expect(all.length).toBeGreaterThan(30);
    for (const q of all) expect(() => selectors(q.expr), q.where).not.toThrow();
    const used = all.flatMap((q) => selectors(q.expr).map((s) => s.metric)).filter((m) => m.includes(":"));
    for (const m of used) expect(recorded.has(m), `${m} is recorded by a rule`).toBe(true);
  });

  it("every selector of the rules matches a series from start-up, before any traffic or check", async () => {
    const missing = unmatched(
      rules.map((r) => ({ where: r.alert ?? r.record!, expr: r.expr })),
      await exported(),
    );
    expect(missing).toEqual([]);
  });

  it("every selector of the dashboard matches a series once each keyspace was checked", async () => {
    for (const ks of ["ca", "rt", "wts", "wte", "wa", "wb"]) {
      expect((await call(daemon.url, "POST", `/v1/keyspaces/${ks}/check`, {})).status).toBe(200);
    }
    const exp = await exported();
    expect(unmatched(dashboardQueries(), exp)).toEqual([]);
    // The check above is not vacuous: a made-up name or label value is reported.
    expect(unmatched([{ where: "probe", expr: 'sidecache_requests_total{op="gett"}' }], exp)).toHaveLength(1);
    expect(unmatched([{ where: "probe", expr: "sidecache_cache_hit_total" }], exp)).toHaveLength(1);
  });

  it("the dashboard has a panel for each area and a unique uid", () => {
    const titles = panels.filter((p) => p.type === "row").map((p) => p.title);
    expect(titles).toEqual(["Traffic", "Cache", "Write-behind", "Consistency", "Process"]);
    expect(dashboard.uid).toBe("sidecache");
  });
});

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown> | string[];
}

const ENV = {
  APP_TOKEN: "app-token-0123456789",
  OPERATOR_TOKEN: "operator-token-0123456789",
  POSTGRES_PASSWORD: "pw",
  DATABASE_URL: "postgres://app:pw@postgres:5432/app",
};

describe("docker-compose.yaml", () => {
  const compose = parse(read("docker-compose.yaml")) as { services: Record<string, ComposeService> };
  const svc = compose.services;
  const mounts = (s: ComposeService) =>
    (s.volumes ?? [])
      .filter((v) => v.startsWith("./"))
      .map((v) => {
        const [host, target] = v.split(":");
        return { host: join(DEPLOY, host!), target: target! };
      });
  const mounted = (s: ComposeService, target: string) => mounts(s).find((m) => m.target === target)?.host;

  it("has the example application, sidecache, Redis, PostgreSQL, Prometheus and Grafana; every mounted file exists", () => {
    expect(Object.keys(svc).sort()).toEqual([
      "app",
      "grafana",
      "postgres",
      "prometheus",
      "redis",
      "sidecache",
    ]);
    for (const s of Object.values(svc))
      for (const m of mounts(s)) expect(existsSync(m.host), m.host).toBe(true);
    const build = svc.sidecache!.build!;
    expect(existsSync(join(DEPLOY, build.context, build.dockerfile))).toBe(true);
  });

  it("sidecache's configuration is valid and points at the Compose services, on the published port", () => {
    const s = svc.sidecache!;
    const file = s.command![s.command!.indexOf("--config") + 1]!;
    const config = parseConfig(readFileSync(mounted(s, file)!, "utf8"), file, ENV);
    expect(s.ports).toContain(`127.0.0.1:${config.server.port}:${config.server.port}`);
    expect(config.server.host).toBe("0.0.0.0");
    expect(config.auth?.tokens.length).toBeGreaterThan(0);
    // Every ${VAR} the file needs is given to the container.
    for (const v of readFileSync(mounted(s, file)!, "utf8").matchAll(/\$\{(\w+)/g)) {
      expect(Object.keys(s.environment!), v[1]).toContain(v[1]);
    }
    const cache = new URL(config.cache.url);
    expect(Object.keys(svc)).toContain(cache.hostname);
    expect(cache.port).toBe("6379");
    const store = new URL(config.store.url);
    expect(store.hostname).toBe("postgres");
    expect(store.username).toBe(svc.postgres!.environment!.POSTGRES_USER);
    expect(store.pathname).toBe(`/${svc.postgres!.environment!.POSTGRES_DB}`);
    expect(s.healthcheck!.test.join(" ")).toContain(`http://127.0.0.1:${config.server.port}/readyz`);
    // write-behind's queue needs a Redis that keeps it (docs/write-behind.md).
    expect(svc.redis!.command!.join(" ")).toContain("--appendonly yes");
    expect(svc.redis!.command!.join(" ")).toContain("--maxmemory-policy noeviction");
    expect(svc.app!.environment!.SIDECACHE_URL).toBe(`http://sidecache:${config.server.port}`);
  });

  it("Prometheus scrapes sidecache's /metrics and loads the shipped rules; Grafana reads Prometheus and the dashboard", () => {
    const p = svc.prometheus!;
    const prom = parse(readFileSync(mounted(p, "/etc/prometheus/prometheus.yml")!, "utf8")) as {
      rule_files: string[];
      scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[];
    };
    expect(prom.scrape_configs[0]!.metrics_path).toBe("/metrics");
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual(["sidecache:7070"]);
    for (const f of prom.rule_files)
      expect(mounted(p, f)).toBe(join(DEPLOY, "prometheus/sidecache-rules.yaml"));

    const g = svc.grafana!;
    const provisioning = mounted(g, "/etc/grafana/provisioning")!;
    const ds = parse(readFileSync(join(provisioning, "datasources/prometheus.yaml"), "utf8")) as {
      datasources: { url: string; type: string }[];
    };
    expect(ds.datasources[0]).toMatchObject({ type: "prometheus", url: "http://prometheus:9090" });
    expect(p.ports).toContain("127.0.0.1:9090:9090");
    const dashboards = parse(readFileSync(join(provisioning, "dashboards/sidecache.yaml"), "utf8")) as {
      providers: { options: { path: string } }[];
    };
    const dir = dashboards.providers[0]!.options.path;
    const file = mounts(g).find((m) => dirname(m.target) === dir);
    expect(file?.host).toBe(join(DEPLOY, "grafana/sidecache-dashboard.json"));
  });
});

describe("the Kubernetes example", () => {
  const docs = parseAllDocuments(read("kubernetes/sidecache-sidecar.yaml")).map((d) => d.toJS() as K8s);
  interface K8s {
    kind: string;
    metadata: { name: string };
    data?: Record<string, string>;
    stringData?: Record<string, string>;
    spec?: {
      selector?: Record<string, unknown>;
      ports?: { targetPort: string }[];
      template?: {
        metadata: { annotations: Record<string, string> };
        spec: { containers: Container[]; volumes: { name: string; configMap?: { name: string } }[] };
      };
    };
  }
  interface Container {
    name: string;
    args?: string[];
    ports?: { name: string; containerPort: number }[];
    env?: { name: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
    volumeMounts?: { name: string; mountPath: string }[];
    livenessProbe?: { httpGet: { path: string; port: number } };
    readinessProbe?: { httpGet: { path: string; port: number } };
  }
  const byKind = (k: string) => docs.find((d) => d.kind === k)!;

  it("a ConfigMap with a valid configuration, a Secret with the tokens, sidecache as a sidecar with probes on /healthz and /readyz", () => {
    expect(docs.map((d) => d.kind)).toEqual(["ConfigMap", "Secret", "Deployment", "Service"]);
    const cm = byKind("ConfigMap");
    const secret = byKind("Secret");
    const pod = byKind("Deployment").spec!.template!;
    const containers = pod.spec.containers;
    expect(containers.map((c) => c.name)).toEqual(["app", "sidecache"]);
    const sc = containers[1]!;

    const [fileName, text] = Object.entries(cm.data!)[0]!;
    const config = parseConfig(text, fileName, ENV);
    const port = config.server.port;
    expect(sc.ports![0]!.containerPort).toBe(port);
    expect(sc.livenessProbe!.httpGet).toEqual({ path: "/healthz", port });
    expect(sc.readinessProbe!.httpGet).toEqual({ path: "/readyz", port });
    expect(config.auth?.protectOps).toBe(false); // the kubelet's probes carry no token

    // --config names the file the ConfigMap volume mounts.
    const mount = sc.volumeMounts![0]!;
    expect(sc.args![sc.args!.indexOf("--config") + 1]).toBe(`${mount.mountPath}/${fileName}`);
    expect(pod.spec.volumes.find((v) => v.name === mount.name)?.configMap?.name).toBe(cm.metadata.name);

    // Every ${VAR} of the configuration comes from the Secret, by a key it has.
    const env = new Map((sc.env ?? []).map((e) => [e.name, e.valueFrom?.secretKeyRef]));
    for (const v of text.matchAll(/\$\{(\w+)/g)) {
      const ref = env.get(v[1]!);
      expect(ref, v[1]).toBeDefined();
      expect(ref!.name).toBe(secret.metadata.name);
      expect(Object.keys(secret.stringData!)).toContain(ref!.key);
    }
    for (const t of config.auth!.tokens) expect(t.token.length).toBeGreaterThanOrEqual(16);

    // The app talks to its sidecar on loopback; Prometheus finds /metrics on the sidecar's port.
    const appEnv = containers[0]!.env!.find((e) => e.name === "SIDECACHE_URL") as { value?: string };
    expect(appEnv.value).toBe(`http://127.0.0.1:${port}`);
    expect(pod.metadata.annotations).toMatchObject({
      "prometheus.io/port": String(port),
      "prometheus.io/path": "/metrics",
    });
    const service = byKind("Service");
    expect(containers[0]!.ports!.map((p) => p.name)).toContain(service.spec!.ports![0]!.targetPort);
  });
});

describe("the Dockerfile", () => {
  const text = readFileSync("Dockerfile", "utf8");
  it("copies files that exist and runs the entry point the daemon build produces", () => {
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) expect(existsSync(src), src).toBe(true);
    }
    expect(text).toContain('ENTRYPOINT ["node", "dist/cmd/sidecache.js"]');
    const daemonBuild = JSON.parse(readFileSync("tsconfig.daemon.json", "utf8")) as { include: string[] };
    expect(daemonBuild.include).toEqual(expect.arrayContaining(["cmd", "src"]));
    const cmd = /^CMD \["--config", "(.+)"\]$/m.exec(text);
    expect(existsSync(cmd![1]!)).toBe(true);
  });
});
