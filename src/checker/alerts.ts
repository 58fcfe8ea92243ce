/**
 * Consistency alerts to webhooks (undici). One firing alert per keyspace when a check's ratio passes its
 * alert_ratio, one resolved alert when a check comes back under it; the state is shared through the
 * coordination (Redis), so several daemons send each transition once. Delivery runs in the background,
 * one queue per webhook (a resolved alert never overtakes its firing alert), retried with capped
 * exponential backoff; the checker never waits for it.
 *
 * Alertmanager format: a firing alert carries endsAt a few hours ahead and is re-sent every hour while
 * the keyspace stays over the line (Alertmanager would otherwise resolve it by itself); a resolved alert
 * carries endsAt now. The json format gets transitions only.
 */
import type { WebhookConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { Telemetry } from "../telemetry.js";
import type { Coordination } from "./lock.js";
import type { CheckReport } from "./types.js";

export const ALERT_NAME = "SidecacheInconsistent";

export interface AlertOptions {
  /** tries per delivery */
  attempts: number;
  /** first retry delay; doubles per try up to maxDelayMs */
  baseDelayMs: number;
  maxDelayMs: number;
  timeoutMs: number;
  /** Alertmanager: how often a firing alert is sent again while it lasts */
  resendMs: number;
  /** most deliveries waiting per webhook; the oldest are dropped beyond it */
  maxQueue: number;
}

export const DEFAULT_ALERT_OPTIONS: AlertOptions = {
  attempts: 8,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  timeoutMs: 5_000,
  resendMs: 3_600_000,
  maxQueue: 100,
};

interface Delivery {
  keyspace: string;
  state: "firing" | "resolved";
  body: string;
}

class WebhookQueue {
  private readonly queue: Delivery[] = [];
  private busy = false;
  private timer?: NodeJS.Timeout;
  private wake?: () => void;
  private stopped = false;

  constructor(
    readonly hook: WebhookConfig,
    private readonly o: AlertOptions,
    private readonly telemetry: Telemetry,
    private readonly log: Logger,
  ) {}

  push(d: Delivery): void {
    if (this.stopped) return;
    this.queue.push(d);
    while (this.queue.length > this.o.maxQueue) {
      const dropped = this.queue.shift()!;
      this.log.error(
        { webhook: this.hook.url, keyspace: dropped.keyspace },
        "alert queue full; oldest alert dropped",
      );
    }
    if (!this.busy) void this.drain();
  }

  get idle(): boolean {
    return !this.busy && this.queue.length === 0;
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.wake?.();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const d = this.queue[0]!;
        const ok = await this.deliver(d);
        if (this.queue[0] === d) this.queue.shift();
        this.telemetry.emit({
          type: "consistency_alert",
          keyspace: d.keyspace,
          state: d.state,
          outcome: ok ? "sent" : "failed",
        });
      }
    } finally {
      this.busy = false;
    }
  }

  private async deliver(d: Delivery): Promise<boolean> {
    for (let attempt = 1; !this.stopped; attempt++) {
      let problem: string;
      try {
        // Loaded on the first alert: a daemon whose checker never alerts does not carry it (about 4 MiB).
        const { request } = await import("undici");
        const res = await request(this.hook.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: d.body,
          headersTimeout: this.o.timeoutMs,
          bodyTimeout: this.o.timeoutMs,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) {
          this.log.info(
            { webhook: this.hook.url, keyspace: d.keyspace, state: d.state },
            "consistency alert sent",
          );
          return true;
        }
        problem = `HTTP ${res.statusCode}`;
      } catch (err) {
        problem = err instanceof Error ? err.message : String(err);
      }
      if (attempt >= this.o.attempts) {
        this.log.error(
          { webhook: this.hook.url, keyspace: d.keyspace, state: d.state, problem, attempts: attempt },
          "consistency alert not delivered; giving up",
        );
        return false;
      }
      const delay = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (attempt - 1));
      this.log.warn(
        { webhook: this.hook.url, keyspace: d.keyspace, problem, retryInMs: delay },
        "alert delivery failed; retrying",
      );
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, delay * (0.75 + Math.random() * 0.5));
      });
    }
    return false;
  }
}

export class Alerts {
  private readonly queues: WebhookQueue[];
  private readonly o: AlertOptions;

  constructor(
    webhooks: WebhookConfig[],
    private readonly coordination: Coordination,
    telemetry: Telemetry,
    private readonly log: Logger,
    options: Partial<AlertOptions> = {},
    private readonly source = "sidecache",
  ) {
    this.o = { ...DEFAULT_ALERT_OPTIONS, ...options };
    this.queues = webhooks.map((h) => new WebhookQueue(h, this.o, telemetry, log));
  }

  /** Decides from a finished check whether an alert goes out; never waits for delivery. */
  async observe(report: CheckReport, alertRatio: number): Promise<void> {
    const now = Date.now();
    const ks = report.keyspace;
    if (report.ratio > alertRatio) {
      const { transition, state } = await this.coordination.fire(ks, now);
      const resend =
        !transition &&
        this.queues.some((q) => q.hook.format === "alertmanager") &&
        now - state.sentAt >= this.o.resendMs;
      if (!transition && !resend) return;
      const sent = { ...state, sentAt: now };
      await this.coordination.markSent(ks, sent);
      if (transition)
        this.log.error({ keyspace: ks, ratio: report.ratio, alertRatio }, "consistency alert firing");
      for (const q of this.queues) {
        if (transition || q.hook.format === "alertmanager")
          q.push(this.delivery(q.hook, "firing", report, alertRatio, sent, now));
      }
      return;
    }
    const was = await this.coordination.resolve(ks);
    if (!was) return;
    this.log.info({ keyspace: ks, ratio: report.ratio, alertRatio }, "consistency alert resolved");
    for (const q of this.queues) q.push(this.delivery(q.hook, "resolved", report, alertRatio, was, now));
  }

  /** Whether every delivery so far is done (sent or given up). */
  get idle(): boolean {
    return this.queues.every((q) => q.idle);
  }

  stop(): void {
    for (const q of this.queues) q.stop();
  }

  private delivery(
    hook: WebhookConfig,
    state: "firing" | "resolved",
    report: CheckReport,
    alertRatio: number,
    alert: { startsAt: number },
    now: number,
  ): Delivery {
    const ks = report.keyspace;
    const startsAt = new Date(alert.startsAt || now).toISOString();
    const summary =
      state === "firing"
        ? `sidecache keyspace ${ks}: ${(report.ratio * 100).toFixed(2)}% of checked keys disagree with PostgreSQL (alert at ${(alertRatio * 100).toFixed(2)}%)`
        : `sidecache keyspace ${ks}: back under ${(alertRatio * 100).toFixed(2)}% inconsistent keys`;
    if (hook.format === "alertmanager") {
      const endsAt = state === "firing" ? new Date(now + this.o.resendMs * 3) : new Date(now);
      const body = [
        {
          labels: { alertname: ALERT_NAME, keyspace: ks, severity: "critical", service: this.source },
          annotations: {
            summary,
            description: `last check: sampled ${report.sampled}, inconsistent ${report.inconsistent} ${JSON.stringify(report.by_kind)}, repaired ${report.repaired}, ratio ${report.ratio} (95% upper bound ${report.ratio_upper_95}), started ${report.started_at}`,
          },
          startsAt,
          endsAt: endsAt.toISOString(),
        },
      ];
      return { keyspace: ks, state, body: JSON.stringify(body) };
    }
    const body = {
      alert: ALERT_NAME,
      status: state,
      keyspace: ks,
      summary,
      ratio: report.ratio,
      alert_ratio: alertRatio,
      starts_at: startsAt,
      ...(state === "resolved" ? { ends_at: new Date(now).toISOString() } : {}),
      report,
    };
    return { keyspace: ks, state, body: JSON.stringify(body) };
  }
}
