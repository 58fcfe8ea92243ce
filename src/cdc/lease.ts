/**
 * Which daemon reads the slot: the one holding a session advisory lock on a connection of its own. The
 * lock lives as long as that session: a daemon that dies (or whose connection is cut) loses it, and
 * another takes it at its next try. The holder fences the slot before reading it: a walsender still
 * streaming it for an earlier holder is terminated, so only one reader can move the slot's position.
 * The same connection runs the few other statements the reader needs (setup, the slot's state).
 */
import pg from "pg";
import type { Logger } from "../log.js";
import { endClient } from "./end-client.js";

export class CdcLease {
  private client?: pg.Client;
  private connecting?: Promise<pg.Client>;
  private lost?: () => void;
  held = false;

  constructor(
    private readonly url: string,
    private readonly slot: string,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** Called once whenever a held lease is lost with its connection. */
  onLost(listener: () => void): void {
    this.lost = listener;
  }

  /** One statement on the lease's connection (opened again if it was lost). */
  async query(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
    const client = await this.connection();
    return client.query(text, params);
  }

  /** Takes the lock if nobody holds it; whether this daemon holds it now. */
  async tryAcquire(): Promise<boolean> {
    // A session lock lasts as long as its session: a session that still answers still holds it.
    if (this.held) {
      await this.query("select 1");
      return this.held;
    }
    const r = await this.query(
      `select pg_try_advisory_lock(hashtext('sidecache:cdc'), hashtext($1)) as got`,
      [this.slot],
    );
    this.held = r.rows[0]?.got === true;
    return this.held;
  }

  /**
   * Terminates any walsender still streaming the slot (it serves a holder that lost the lease) and waits
   * until the slot is free. Throws when it stays busy.
   */
  async fence(waitMs = 5_000): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const r = await this.query(
        `select active_pid, pg_terminate_backend(active_pid) as terminated from pg_replication_slots
         where slot_name = $1 and active_pid is not null`,
        [this.slot],
      );
      const pid = r.rows[0]?.active_pid as number | undefined;
      if (pid === undefined) return;
      this.log.warn({ pid, slot: this.slot }, "cdc: terminated a walsender still reading the slot");
      if (Date.now() > deadline)
        throw new Error(`The replication slot ${this.slot} stays in use by pid ${pid}.`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Gives the lease up (closing its connection releases the lock). */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.held = false;
    if (client) await endClient(client);
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.url,
        application_name: "sidecache-cdc-lease",
        keepAlive: true,
        connectionTimeoutMillis: this.timeoutMs,
        query_timeout: this.timeoutMs + 1000,
      });
      const gone = (why: string) => {
        if (this.client !== client) return;
        this.client = undefined;
        const wasHeld = this.held;
        this.held = false;
        this.log.warn({ why }, "cdc: lease connection lost");
        if (wasHeld) this.lost?.();
      };
      client.on("error", (err) => gone(err.message));
      client.on("end", () => gone("closed"));
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
      this.client = client;
      return client;
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }
}
