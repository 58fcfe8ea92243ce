/**
 * Versions are hybrid clocks: microseconds since the epoch, bumped past anything already seen.
 * That keeps them growing per key across daemon restarts, several daemons and a cache that lost
 * its data (the wall clock carries them), while the store adds `greatest(v, current + 1)` so a
 * clock that stepped back can never move a key backwards. 2^53 µs is year 2255: numbers stay exact.
 */
let last = 0;

export function nextVersion(floor = 0): number {
  const now = Date.now() * 1000;
  last = Math.max(now, last + 1, floor + 1);
  return last;
}

/** Tell the clock about a version seen elsewhere so the next one issued is above it. */
export function observeVersion(v: number): void {
  if (v > last) last = v;
}
