/**
 * How far the daemon lets V8's old generation grow past what the last full collection kept.
 *
 * V8 sizes the next full collection's trigger at up to several times the live old generation. A daemon that
 * fills a near cache promotes its entries together with request garbage, so its old generation stood at
 * about twice the live data when the filling ended, and its resident memory with it (212 MiB with 100,000
 * near entries, 98 MiB before): pages are only handed back long after, when V8 finds the process idle.
 * Growing by 10% collects that garbage as it comes (the same run: about 150 MiB). It costs more full
 * collections while the old generation grows, about one per 10% of growth; under a steady load of hits
 * little is promoted, and a 12-second run of Redis hits had 3 (docs/operations.md, "Memory").
 *
 * `node --heap-growing-percent=N dist/cmd/sidecache.js` keeps the operator's choice.
 */
import { setFlagsFromString } from "node:v8";

export const HEAP_GROWING_PERCENT = 10;

export function applyHeapPolicy(execArgv: readonly string[] = process.execArgv): void {
  const given = execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a));
  if (!given) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
