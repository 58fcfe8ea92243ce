/**
 * How sure a sample lets us be: the one-sided 95% Clopper-Pearson upper bound of a binomial rate, so
 * that 0 inconsistent keys out of 100 reads as "below 3%", not as "perfect".
 */

/** log P(X <= x) for X ~ Binomial(n, p), summed in log space term by term. */
function logBinomCdf(x: number, n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return x >= n ? 0 : -Infinity;
  const ratio = Math.log(p) - Math.log1p(-p);
  let term = n * Math.log1p(-p);
  let total = term;
  for (let k = 0; k < x; k++) {
    term += Math.log(n - k) - Math.log(k + 1) + ratio;
    const hi = Math.max(total, term);
    total = hi + Math.log(Math.exp(total - hi) + Math.exp(term - hi));
  }
  return total;
}

/** The p at which P(X <= x) falls to alpha: no larger rate is consistent with seeing only x of n. */
export function upperBound(x: number, n: number, confidence = 0.95): number {
  if (n <= 0) return 1;
  if (x >= n) return 1;
  const alpha = 1 - confidence;
  if (x === 0) return 1 - Math.pow(alpha, 1 / n);
  const target = Math.log(alpha);
  let lo = x / n;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (logBinomCdf(x, n, mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** -log10 of a rate: 0.001 is 3 nines (99.9% consistent). Null for a rate of 0 (no finite estimate). */
export function nines(rate: number): number | null {
  if (rate <= 0) return null;
  return round(-Math.log10(rate), 2);
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
