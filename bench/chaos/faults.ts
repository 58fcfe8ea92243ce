/** The chaos monkey: one fault at a time, at random moments, each healed after a random while. */
import type { PrivatePostgres } from "../../test/support/pg-server.js";
import type { ChildDaemon, DurableRedis } from "./processes.js";

export const FAULTS = [
  "kill-redis",
  "stop-postgres",
  "kill-postgres",
  "freeze-postgres",
  "kill-daemon",
  "restart-daemon",
] as const;
export type Fault = (typeof FAULTS)[number];

export interface Targets {
  redis: DurableRedis;
  postgres: PrivatePostgres;
  daemon: ChildDaemon;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Monkey {
  readonly done: { at: number; fault: Fault; downMs: number }[] = [];
  private stopped = false;
  private loop?: Promise<void>;
  private postgresUp = true;
  /** when the cache last came back (ms, this process's clock) */

  constructor(
    private readonly t: Targets,
    private readonly random: () => number,
    private readonly say: (line: string) => void,
    private readonly t0: number,
    private readonly faults: readonly Fault[] = FAULTS,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops after the fault under way is healed; leaves everything running. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.heal();
  }

  private between(lo: number, hi: number): number {
    return Math.round(lo + this.random() * (hi - lo));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await sleep(this.between(300, 1500));
      if (this.stopped) break;
      const fault = this.faults[Math.floor(this.random() * this.faults.length)]!;
      const downMs = this.between(200, 1500);
      const at = (performance.now() - this.t0) / 1000;
      this.say(`  +${at.toFixed(1)}s ${fault} (${downMs} ms)`);
      await this.inject(fault, downMs);
      this.done.push({ at, fault, downMs });
    }
  }

  private async inject(fault: Fault, downMs: number): Promise<void> {
    const { redis, postgres, daemon } = this.t;
    switch (fault) {
      case "kill-redis":
        await redis.signal("SIGKILL");
        await sleep(downMs);
        await redis.start();
        return;
      case "stop-postgres":
      case "kill-postgres":
        this.postgresUp = false;
        await (fault === "kill-postgres" ? postgres.kill() : postgres.stop());
        await sleep(downMs);
        await postgres.start();
        this.postgresUp = true;
        return;
      case "freeze-postgres":
        await postgres.pause();
        await sleep(downMs);
        await postgres.resume();
        return;
      case "kill-daemon":
      case "restart-daemon":
        await daemon.signal(fault === "kill-daemon" ? "SIGKILL" : "SIGTERM");
        await daemon.start();
        return;
    }
  }

  private async heal(): Promise<void> {
    const { redis, postgres, daemon } = this.t;
    await postgres.resume();
    if (!this.postgresUp) {
      await postgres.start();
      this.postgresUp = true;
    }
    if (!redis.running) await redis.start();
    if (!daemon.running) await daemon.start();
  }
}
