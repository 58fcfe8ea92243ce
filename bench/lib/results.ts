/** The shape of bench/results/results.json. */
import type { Machine } from "./machine.js";
import type { Options } from "./context.js";
import type { HitResult } from "../sections/hitpath.js";
import type { WritesResult } from "../sections/writes.js";
import type { StampedeResult } from "../sections/stampede.js";
import type { NearResult } from "../sections/near.js";
import type { HitRateResult } from "../sections/hitrate.js";
import type { CostResult } from "../sections/cost.js";
import type { RespBenchResult } from "../sections/resp.js";
import type { ClusterResult } from "../sections/cluster.js";
import type { IdleResult } from "../sections/idle.js";

export interface Results {
  machine: Machine;
  options: Omit<Options, "outDir">;
  startedAt: string;
  finishedAt?: string;
  wallS?: number;
  hit?: HitResult;
  writes?: WritesResult;
  stampede?: StampedeResult;
  near?: NearResult;
  hitrate?: HitRateResult;
  cost?: CostResult;
  resp?: RespBenchResult;
  cluster?: ClusterResult;
  idle?: IdleResult;
  /** sections that failed, with the error */
  failed: Record<string, string>;
}
