/**
 * A cron schedule per keyspace (node-cron; 5 fields, or 6 with a leading seconds field). The scheduler only
 * says "this keyspace's tick for this slot is due"; the checker decides whether this daemon runs it. The
 * tick source is injectable so that tests can drive schedules with a fake clock.
 */
import { createTask } from "node-cron";
import type { KeyspaceConfig } from "../config/types.js";
import type { Logger } from "../log.js";

/** Calls onTick(slot, intervalMs) at every slot of the expression until stopped. */
export type TickSource = (
  expression: string,
  onTick: (slot: Date, intervalMs: number) => void,
  log: Logger,
) => { stop(): void };

export const cronTicks: TickSource = (expression, onTick, log) => {
  const task = createTask(
    expression,
    (ctx) => {
      const next = task.getNextRuns(2);
      const interval = next.length === 2 ? next[1]!.getTime() - next[0]!.getTime() : 60_000;
      onTick(ctx.date, interval);
    },
    {
      // The checker keeps its own overlap and coordination rules; node-cron only ticks.
      noOverlap: false,
      logger: {
        info: (m) => log.debug(m),
        warn: (m) => log.warn(m),
        error: (m) => log.error(String(m)),
        debug: (m) => log.debug(String(m)),
      },
    },
  );
  void task.start();
  return {
    stop: () => {
      void task.destroy();
    },
  };
};

export class CheckScheduler {
  private readonly tasks = new Map<string, { schedule: string; stop(): void }>();

  constructor(
    private readonly onTick: (keyspace: string, slot: Date, intervalMs: number) => void,
    private readonly log: Logger,
    private readonly ticks: TickSource = cronTicks,
  ) {}

  /** Starts, replaces or stops tasks so that each enabled keyspace has one on its schedule. */
  sync(keyspaces: KeyspaceConfig[]): void {
    const wanted = new Map(
      keyspaces.filter((k) => k.checker.enabled).map((k) => [k.name, k.checker.schedule]),
    );
    for (const [name, task] of this.tasks) {
      if (wanted.get(name) !== task.schedule) {
        task.stop();
        this.tasks.delete(name);
      }
    }
    for (const [name, schedule] of wanted) {
      if (this.tasks.has(name)) continue;
      const handle = this.ticks(schedule, (slot, interval) => this.onTick(name, slot, interval), this.log);
      this.tasks.set(name, { schedule, stop: () => handle.stop() });
    }
  }

  scheduled(): string[] {
    return [...this.tasks.keys()];
  }

  stop(): void {
    for (const task of this.tasks.values()) task.stop();
    this.tasks.clear();
  }
}
