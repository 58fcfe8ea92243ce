/** Seeded randomness, so a chaos run's choices (each client's operations, the faults) repeat from its seed. */

/** mulberry32: a small, fast generator of numbers in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A generator of its own for one part of the run (a client, the fault injector), derived from the run's
 * seed: each part draws the same sequence whatever the others do and however their timing interleaves.
 */
export function stream(seed: number, part: number): () => number {
  return seeded(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(part + 1, 0xc2b2ae35));
}

export type Random = () => number;

export const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)]!;

export const between = (random: Random, lo: number, hi: number): number =>
  Math.round(lo + random() * (hi - lo));
