/** The background-load section of bench.md: what idle daemons cost Redis and PostgreSQL. */
import type { IdleResult } from "../sections/idle.js";

const f = (n: number, d = 1): string =>
  n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });

export function renderIdle(r: IdleResult): string[] {
  const rows = r.rows.map((row) =>
    [
      row.via ? `${row.daemons}, through PgBouncer` : String(row.daemons),
      f(row.redisCommandsPerS),
      f(row.redisCommandsPerS / row.daemons),
      f(row.pgStatementsPerS),
      f(row.pgStatementsPerS / row.daemons, 2),
      String(row.redisConnections),
      `${row.pgConnections} (${row.pgConnectionsPeak})`,
      row.wakeupsPerSPerDaemon !== undefined ? f(row.wakeupsPerSPerDaemon) : "-",
      row.cpuMsPerSPerDaemon !== undefined ? f(row.cpuMsPerSPerDaemon, 2) : "-",
    ].join(" | "),
  );
  const one = r.rows[0];
  const direct = r.rows.filter((x) => !x.via);
  const many = direct[direct.length - 1];
  return [
    "## Background load: idle daemons",
    `N daemons (child processes), each with the keyspaces below and having answered one read per keyspace, ` +
      `over a private Redis and a private PostgreSQL, with no request at all for ${one?.windowS ?? "?"} s: Redis ` +
      "commands counted by `INFO commandstats` (commands run inside scripts included), PostgreSQL statements by " +
      "`pg_stat_statements`, connections as each server lists them (PostgreSQL: held idle, and the most seen " +
      "while the daemons started), and each daemon's own cost on its machine: how many times a second its " +
      "main thread was woken (voluntary context switches in `/proc`) and its CPU (utime + stime). The last row, when present, is the largest fleet again with `store.pooler: " +
      "transaction`, through a PgBouncer in transaction mode with `default_pool_size = 10`.",
    "```yaml\n" + r.config.trim() + "\n```",
    [
      "| daemons | Redis commands/s | per daemon | PostgreSQL statements/s | per daemon | Redis connections | PostgreSQL connections (peak) | wake-ups/s per daemon | CPU ms/s per daemon |",
      "|---|---|---|---|---|---|---|---|---|",
      ...rows.map((x) => `| ${x} |`),
    ].join("\n"),
    one && many && many !== one
      ? `${many.daemons} daemons cost Redis ×${f(many.redisCommandsPerS / one.redisCommandsPerS)} and PostgreSQL ` +
        `×${f(many.pgStatementsPerS / Math.max(one.pgStatementsPerS, 1e-9))} what one daemon does.`
      : "",
  ].filter((s) => s !== "");
}
