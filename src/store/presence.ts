/**
 * Daemons that share a PostgreSQL announce how they cache, so that a daemon whose cache lives in its own
 * process (`memory:`) never runs beside another daemon writing the same tables: it would not see their
 * writes and would serve what they replaced until its TTL. Per table of its keyspaces, a `memory:` daemon
 * holds an exclusive advisory lock and a Redis daemon a shared one, on a connection of its own for its
 * whole life; a daemon whose lock is refused does not start, and says why. Tables added by a reload are
 * not locked (a restart takes them).
 */
import pg from "pg";
import type { Logger } from "../log.js";

/** The first key of the two-key advisory lock: sidecache's own class of locks. */
const LOCK_CLASS = 0x5c1dcac;
const RETRY_MS = 2_000;

export class PresenceRefusedError extends Error {}

export class Presence {
  private client?: pg.Client;
  private closed = false;
  private timer?: NodeJS.Timeout;

  private constructor(
    private readonly url: string,
    private readonly exclusive: boolean,
    private readonly tables: string[],
    private readonly log: Logger,
  ) {}

  /** Takes the locks or throws PresenceRefusedError with what to do. */
  static async acquire(url: string, exclusive: boolean, tables: string[], log: Logger): Promise<Presence> {
    const p = new Presence(url, exclusive, [...new Set(tables.map((t) => t.toLowerCase()))].sort(), log);
    const refused = await p.take();
    if (refused !== undefined) {
      await p.close();
      throw new PresenceRefusedError(
        exclusive
          ? `Another sidecache daemon already uses table ${refused} in this PostgreSQL. This daemon's cache ` +
              `is in its own memory (cache.url "memory:"), so it would not see the other's writes and would ` +
              `serve values they replaced. Give every daemon sharing these tables one Redis ` +
              `(cache.url: redis://...), or run a single daemon.`
          : `A sidecache daemon with an in-process cache (cache.url "memory:") already uses table ${refused} ` +
              `in this PostgreSQL: it would not see this daemon's writes. Point it at the same Redis as this ` +
              `one, or stop it.`,
      );
    }
    return p;
  }

  /** Takes every lock; the table whose lock was refused, if one was. */
  private async take(): Promise<string | undefined> {
    const client = new pg.Client({ connectionString: this.url, application_name: "sidecache-presence" });
    client.on("error", () => {});
    await client.connect();
    const fn = this.exclusive ? "pg_try_advisory_lock" : "pg_try_advisory_lock_shared";
    for (const table of this.tables) {
      const r = await client.query(`select ${fn}($1, hashtext($2)) as ok`, [LOCK_CLASS, table]);
      if (r.rows[0]?.ok !== true) {
        await client.end().catch(() => {});
        return table;
      }
    }
    this.client = client;
    client.once("end", () => this.lost());
    return undefined;
  }

  /** The connection dropped (PostgreSQL restarted): take the lock again. */
  private lost(): void {
    this.client = undefined;
    if (this.closed) return;
    this.log.warn("presence lock lost with its connection; taking it again");
    const retry = () => {
      this.timer = undefined;
      if (this.closed) return;
      this.take().then(
        (refused) => {
          if (refused === undefined) return;
          this.log.error(
            { table: refused },
            "another daemon took a table with an incompatible cache while the connection was down; caches may disagree",
          );
          this.timer = setTimeout(retry, RETRY_MS).unref();
        },
        () => (this.timer = setTimeout(retry, RETRY_MS).unref()),
      );
    };
    this.timer = setTimeout(retry, RETRY_MS).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.client?.end().catch(() => {});
  }
}
