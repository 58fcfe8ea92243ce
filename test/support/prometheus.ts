/**
 * Debian's Prometheus and Alertmanager for tests: each started on a free port in a temporary directory,
 * with short scrape, evaluation and grouping intervals so that alerts move within seconds.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PROMETHEUS_BIN = process.env.SIDECACHE_PROMETHEUS_BIN ?? "/usr/bin/prometheus";
export const ALERTMANAGER_BIN = process.env.SIDECACHE_ALERTMANAGER_BIN ?? "/usr/bin/prometheus-alertmanager";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export interface Service {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

async function launch(bin: string, args: string[], dir: string, ready: string): Promise<Service> {
  const child: ChildProcess = spawn(bin, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${bin} exited with ${child.exitCode}:\n${out}`);
    const ok = await fetch(ready).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${bin} did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: new URL(ready).origin, output: () => out, stop };
}

/** Alertmanager with one webhook receiver (resolved notifications on), grouping by alert and keyspace. */
export async function startAlertmanager(webhookUrl: string): Promise<Service> {
  const dir = await mkdtemp(join(tmpdir(), "sidecache-am-"));
  const port = await freePort();
  await writeFile(
    join(dir, "alertmanager.yml"),
    `route:
  receiver: hook
  group_by: [alertname, keyspace, service]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "${webhookUrl}"
        send_resolved: true
`,
  );
  return launch(
    ALERTMANAGER_BIN,
    [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--cluster.listen-address=",
      "--log.level=warn",
    ],
    dir,
    `http://127.0.0.1:${port}/-/ready`,
  );
}

/** Prometheus scraping `targets` every 500 ms, evaluating `ruleFiles` as often, alerting to `alertmanager`. */
export async function startPrometheus(options: {
  targets: string[];
  ruleFiles: string[];
  alertmanager?: string;
}): Promise<Service> {
  const dir = await mkdtemp(join(tmpdir(), "sidecache-prom-"));
  const port = await freePort();
  const alerting = options.alertmanager
    ? `alerting:
  alertmanagers:
    - static_configs:
        - targets: ["${new URL(options.alertmanager).host}"]
`
    : "";
  await writeFile(
    join(dir, "prometheus.yml"),
    `global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
  evaluation_interval: 500ms
rule_files: ${JSON.stringify(options.ruleFiles)}
${alerting}scrape_configs:
  - job_name: sidecache
    static_configs:
      - targets: ${JSON.stringify(options.targets)}
`,
  );
  return launch(
    PROMETHEUS_BIN,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--rules.alert.resend-delay=500ms",
      "--log.level=warn",
    ],
    dir,
    `http://127.0.0.1:${port}/-/ready`,
  );
}

/** An instant query; the result vector as {labels, value}. */
export async function query(
  prom: Service,
  expr: string,
): Promise<{ labels: Record<string, string>; value: number }[]> {
  const r = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await r.json()) as {
    status: string;
    error?: string;
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  if (body.status !== "success") throw new Error(`query ${expr}: ${body.error}`);
  return body.data.result.map((s) => ({ labels: s.metric, value: Number(s.value[1]) }));
}
