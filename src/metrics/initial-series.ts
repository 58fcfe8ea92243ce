/**
 * The label sets each keyspace exports at 0 from the moment it starts. Prometheus's increase() and rate()
 * see nothing of a series' first sample: a counter that first appears at 5 has increased by 0, so a
 * consistency check that finds 5 stale keys would never fire an alert. Every series an alerting rule or
 * a dashboard reads therefore exists before the first event.
 */
import type { StrategyName } from "../config/types.js";

export const CHECK_KINDS = ["consistent", "stale", "orphan", "missing_write", "mismatch"] as const;
export const INCONSISTENT_KINDS = CHECK_KINDS.filter((k) => k !== "consistent");
export const REPAIR_OUTCOMES = ["repaired", "invalidated", "failed"] as const;
export const ALERT_STATES = ["firing", "resolved"] as const;
export const ALERT_OUTCOMES = ["sent", "failed"] as const;
/** what a backend outage produces, by the guard's codes */
export const BACKEND_ERROR_CODES = ["backend_unavailable", "timeout", "circuit_open"] as const;

type DataOp = "get" | "put" | "delete" | "mget" | "mset";

/**
 * (op, status) pairs of the data routes a keyspace answers: the successes, the outage statuses (503, 504)
 * that error-rate rules watch, and 429 queue_full for write-behind writes.
 */
export function requestSeries(strategy: StrategyName): { op: DataOp; status: string }[] {
  const out: { op: DataOp; status: string }[] = [];
  const add = (op: DataOp, ...statuses: number[]) => {
    for (const s of [...statuses, 503, 504]) out.push({ op, status: String(s) });
  };
  add("get", 200, 404);
  add("mget", 200);
  if (strategy === "read-through") return out;
  const behind = strategy === "write-behind";
  add("put", behind ? 202 : 200, ...(behind ? [429] : []));
  add("delete", behind ? 202 : 204, ...(behind ? [429] : []));
  add("mset", behind ? 202 : 200, ...(behind ? [429] : []));
  return out;
}
