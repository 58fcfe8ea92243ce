/** Reader of a keyspace's `warm:` section (docs/operations.md, cache warming). */
import type { Value } from "../config/node.js";
import type { WarmConfig } from "../config/types.js";

export const WARM_DEFAULTS = { onStart: true, limit: 10_000, rate: 1_000, batch: 100 } as const;

export function readWarm(v: Value): WarmConfig | undefined {
  if (v.missing) return undefined;
  const f = v.fields(["from", "query", "on_start", "limit", "rate", "batch"]);
  const from = f.from.oneOf(["query", "hot"] as const);
  if (from === "query" && !f.query.given)
    f.from.fail("is query: give the query that returns the keys to warm");
  if (from === "hot" && f.query.given) f.query.fail("applies only to from: query; remove it (from is hot)");
  const query = f.query.given
    ? f.query
        .str({
          expect: "one SQL select whose first column is the key",
          check: (q) =>
            /;\s*\S/.test(q) || !/^\s*(select|with|table|values)\b/i.test(q)
              ? "must be one SELECT (or WITH, TABLE, VALUES) statement whose first column is the key"
              : undefined,
        })
        .replace(/;\s*$/, "")
    : undefined;
  const batch = f.batch.int({ min: 1, max: 1_000, def: WARM_DEFAULTS.batch });
  return {
    from,
    ...(query !== undefined ? { query } : {}),
    onStart: f.on_start.bool(WARM_DEFAULTS.onStart),
    limit: f.limit.int({ min: 1, max: 10_000_000, def: WARM_DEFAULTS.limit }),
    rate: f.rate.int({ min: 1, def: WARM_DEFAULTS.rate }),
    batch,
  };
}
