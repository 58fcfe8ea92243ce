/** Durations and sizes as written in the configuration file, converted to milliseconds and bytes. */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i;

const MS_PER: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTES_PER: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

export const DURATION_FORMS = "a number with a unit ms, s, m, h or d (e.g. 250ms, 5s, 1m, 1h, 1d)";
export const SIZE_FORMS = "a number with a unit b, kb, mb or gb (e.g. 100b, 512kb, 1mb, 1gb; k = 1024)";

/** "250ms" → 250, "1.5s" → 1500; undefined when the text is not a duration with a unit. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (MS_PER[m[2] ?? ""] ?? NaN));
}

/** "512kb" → 524288; undefined when the text is not a size with a unit. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * (BYTES_PER[(m[2] ?? "").toLowerCase()] ?? NaN));
}

/** The shortest exact way to write `ms` back, for messages ("1h", "1500ms"). */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) {
    const per = MS_PER[unit] ?? 1;
    if (ms !== 0 && ms % per === 0) return `${ms / per}${unit}`;
  }
  return `${ms}ms`;
}

/** The shortest exact way to write `bytes` back, for messages ("1mb", "100b"). */
export function formatSize(bytes: number): string {
  for (const unit of ["gb", "mb", "kb"]) {
    const per = BYTES_PER[unit] ?? 1;
    if (bytes !== 0 && bytes % per === 0) return `${bytes / per}${unit}`;
  }
  return `${bytes}b`;
}
