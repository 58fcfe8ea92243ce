/**
 * One logical replication connection (pg's Client with `replication: 'database'`) streaming a slot:
 * START_REPLICATION through the copy-both sub-protocol. Incoming CopyData messages are read as they
 * arrive; standby status updates go out on the same socket.
 */
import pg from "pg";
import type { Logger } from "../log.js";
import { endClient } from "./end-client.js";
import { copyDone, readStreamMessage, standbyStatus, type Lsn, type StreamMessage } from "./wire.js";

export interface StreamOptions {
  url: string;
  slot: string;
  publication: string;
  log: Logger;
  /** every message, in order, as it arrives */
  onMessage: (m: StreamMessage) => void;
}

export class ReplicationStream {
  /** settles when the stream ends: resolves when the server ended it, rejects with what broke it */
  readonly ended: Promise<void>;
  private closing = false;

  private constructor(
    private readonly client: pg.Client,
    ended: Promise<void>,
  ) {
    this.ended = ended;
  }

  /** Connects and starts streaming from where the slot stands; rejects if the server refuses. */
  static async open(o: StreamOptions): Promise<ReplicationStream> {
    const config = {
      connectionString: o.url,
      replication: "database",
      application_name: "sidecache-cdc",
      keepAlive: true,
    } as pg.ClientConfig;
    const client = new pg.Client(config);
    // A broken connection shows as the query's rejection; without a listener it would crash the process.
    client.on("error", (err) => o.log.debug({ err: err.message }, "cdc: replication connection error"));
    await client.connect();
    const connection = client.connection;
    connection.on("copyData", (msg: { chunk: Buffer }) => {
      const m = readStreamMessage(msg.chunk);
      if (m) o.onMessage(m);
    });
    const started = new Promise<void>((resolve) => connection.once("replicationStart", () => resolve()));
    // Names are checked by the configuration (lower-case letters, digits, _): nothing to quote.
    const ended = client
      .query(
        `START_REPLICATION SLOT ${o.slot} LOGICAL 0/0 (proto_version '1', publication_names '${o.publication}')`,
      )
      .then(() => undefined);
    ended.catch(() => {});
    try {
      await Promise.race([
        started,
        ended.then(() => {
          throw new Error("the server ended the replication stream before it started");
        }),
      ]);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    return new ReplicationStream(client, ended);
  }

  /** Reports everything up to `flushed` as applied (the slot's confirmed position moves there). */
  sendStatus(flushed: Lsn, replyRequested = false): void {
    const stream = this.client.connection.stream;
    if (!this.closing && stream.writable) stream.write(standbyStatus(flushed, replyRequested));
  }

  /** Stops reading the socket (the server waits, its send buffer full) until resume(). */
  pause(): void {
    this.client.connection.stream.pause();
  }

  resume(): void {
    this.client.connection.stream.resume();
  }

  /** Ends the stream: CopyDone, then the connection is closed. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const stream = this.client.connection.stream;
    if (stream.writable) stream.write(copyDone());
    await endClient(this.client);
    await this.ended.catch(() => {});
  }
}
