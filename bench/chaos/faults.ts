/**
 * The fault injector: faults at random moments drawn from the run's seed, each healed after a while. One
 * backend fault at a time; a daemon that was killed or restarted comes back in the background (a start
 * takes a second or two) while the next faults go on.
 */
import type { PrivatePostgres } from "../../test/support/pg-server.js";
import type { FaultRecord } from "./history.js";
import type { ChildDaemon, DurableRedis } from "./processes.js";
import { between, type Random } from "./random.js";

export const FAULTS = [
  /** SIGKILL, then started again from its append-only file (fsync always): nothing acknowledged is lost */
  "kill-redis",
  /** SIGSTOP for a while: connections stay open, nothing answers */
  "freeze-redis",
  /** SAVE, writes go on for a while, then SIGKILL and a start from that RDB snapshot: they are lost */
  "rdb-restart-redis",
  /** FLUSHALL: every entry, marker and queue gone */
  "flushall-redis",
  "stop-postgres",
  "kill-postgres",
  "freeze-postgres",
  /** one daemon, SIGKILL, then started again */
  "kill-daemon",
  /** one daemon, SIGTERM (drains), then started again */
  "restart-daemon",
  /** one daemon, SIGSTOP for a while */
  "freeze-daemon",
] as const;
export type Fault = (typeof FAULTS)[number];

/** The faults that lose what Redis acknowledged: write-behind's queue does not survive them (by design). */
export const CACHE_LOSING: readonly Fault[] = ["rdb-restart-redis", "flushall-redis"];

export interface Targets {
  redis: DurableRedis;
  postgres: PrivatePostgres;
  daemons: ChildDaemon[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Monkey {
  private stopped = false;
  private loop?: Promise<void>;
  private postgresUp = true;
  private wake?: () => void;
  /** daemons coming back after a kill or a restart, by index */
  private readonly restarting = new Map<number, Promise<void>>();

  constructor(
    private readonly t: Targets,
    private readonly random: Random,
    private readonly faults: readonly Fault[],
    /** performance.now() at the start of the run */
    private readonly t0: number,
    private readonly record: (f: FaultRecord) => void,
    private readonly say: (line: string) => void,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops after the fault under way is healed; leaves everything running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.heal();
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * The faults come as a shuffled deck, dealt again once used up: every kind comes once in each round of
   * as many faults as there are kinds, so a short run still sees many kinds.
   */
  private deck: Fault[] = [];
  private draw(): Fault {
    if (this.deck.length === 0) {
      this.deck = [...this.faults];
      for (let i = this.deck.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [this.deck[i], this.deck[j]] = [this.deck[j]!, this.deck[i]!];
      }
    }
    return this.deck.pop()!;
  }

  private async run(): Promise<void> {
    for (;;) {
      // drawn before the wait, so the sequence of faults depends on the seed alone
      const gap = between(this.random, 300, 1500);
      const fault = this.draw();
      const downMs = between(this.random, 200, 1500);
      const target = Math.floor(this.random() * this.t.daemons.length);
      await this.pause(gap);
      if (this.stopped) return;
      const daemonFault = fault.endsWith("-daemon");
      const start = this.now();
      this.say(`  +${(start / 1000).toFixed(1)}s ${fault}${daemonFault ? ` d${target}` : ""} (${downMs} ms)`);
      const { healed } = await this.inject(fault, downMs, target);
      const record = () =>
        this.record({ fault, target: daemonFault ? target : undefined, start, end: this.now() });
      if (healed) void healed.then(record);
      else record();
    }
  }

  /** Injects the fault and heals it; a daemon's restart is left under way: its promise is returned. */
  private async inject(fault: Fault, downMs: number, target: number): Promise<{ healed?: Promise<void> }> {
    const { redis, postgres } = this.t;
    const daemon = this.t.daemons[target]!;
    if (fault.endsWith("-daemon")) await this.restarting.get(target);
    switch (fault) {
      case "kill-redis":
        await redis.signal("SIGKILL");
        await sleep(downMs);
        await redis.start();
        return {};
      case "freeze-redis":
        redis.freeze();
        await sleep(downMs);
        redis.thaw();
        return {};
      case "rdb-restart-redis":
        await redis.save();
        await sleep(downMs);
        await redis.restartFromSnapshot();
        return {};
      case "flushall-redis":
        await redis.flushAll();
        return {};
      case "stop-postgres":
      case "kill-postgres":
        this.postgresUp = false;
        await (fault === "kill-postgres" ? postgres.kill() : postgres.stop());
        await sleep(downMs);
        await postgres.start();
        this.postgresUp = true;
        return {};
      case "freeze-postgres":
        await postgres.pause();
        await sleep(downMs);
        await postgres.resume();
        return {};
      case "kill-daemon":
      case "restart-daemon": {
        await daemon.signal(fault === "kill-daemon" ? "SIGKILL" : "SIGTERM");
        const down = this.now();
        const back = daemon
          .start()
          .then((starts) => {
            const took = ((this.now() - down) / 1000).toFixed(1);
            this.say(
              `  +${(this.now() / 1000).toFixed(1)}s d${target} back after ${took}s (${starts} start${starts > 1 ? "s" : ""})`,
            );
          })
          .finally(() => this.restarting.delete(target));
        this.restarting.set(target, back);
        return { healed: back };
      }
      case "freeze-daemon":
        daemon.freeze();
        await sleep(downMs);
        daemon.thaw();
        return {};
    }
  }

  private async heal(): Promise<void> {
    const { redis, postgres, daemons } = this.t;
    await Promise.all(this.restarting.values());
    await postgres.resume();
    if (!this.postgresUp) {
      await postgres.start();
      this.postgresUp = true;
    }
    redis.thaw();
    if (!redis.running) await redis.start();
    for (const d of daemons) {
      d.thaw();
      if (!d.running) await d.start();
    }
  }
}
