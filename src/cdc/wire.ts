/**
 * The replication stream's bytes, both ways. pg's connection (through pg-protocol's parser) splits the
 * socket into CopyData messages; this reads what each one carries, with pg-protocol's BufferReader, and
 * builds what the client sends back (standby status updates), framed by pg-protocol's serializer.
 *
 * Inside CopyData: 'w' XLogData (a pgoutput message) and 'k' primary keepalive; pgoutput, protocol
 * version 1: Begin, Commit, Relation, Insert, Update, Delete, Truncate (Origin, Type and Message are
 * read past). Tuple values come in text form; 'u' is a TOASTed value the change did not touch, not sent.
 */
import { serialize } from "pg-protocol";
import { BufferReader } from "pg-protocol/dist/buffer-reader.js";

/** An LSN (a WAL position) as an unsigned 64-bit integer. */
export type Lsn = bigint;

/** The value of a column that is TOASTed and did not change: PostgreSQL does not send it. */
export const UNCHANGED: unique symbol = Symbol("unchanged toast");
export type TupleValue = string | null | typeof UNCHANGED;

/** 2000-01-01T00:00:00Z, PostgreSQL's epoch, in ms since the Unix epoch. */
const PG_EPOCH_MS = 946_684_800_000;

export type StreamMessage =
  | { tag: "xlog"; start: Lsn; end: Lsn; body: Buffer }
  | { tag: "keepalive"; walEnd: Lsn; replyRequested: boolean };

export interface RelationColumn {
  name: string;
  /** 1: part of the replica identity */
  flags: number;
  typeOid: number;
}

export type PgoutputMessage =
  | { type: "begin"; finalLsn: Lsn; commitMs: number; xid: number }
  | { type: "commit"; commitLsn: Lsn; endLsn: Lsn; commitMs: number }
  | {
      type: "relation";
      relid: number;
      namespace: string;
      name: string;
      /** d default, n nothing, f full, i index */
      replicaIdentity: string;
      columns: RelationColumn[];
    }
  | { type: "insert"; relid: number; row: TupleValue[] }
  /** key: the old replica identity ('K', only when it changed); old: the whole old row ('O', identity full) */
  | { type: "update"; relid: number; key?: TupleValue[]; old?: TupleValue[]; row: TupleValue[] }
  | { type: "delete"; relid: number; key?: TupleValue[]; old?: TupleValue[] }
  | { type: "truncate"; relids: number[] }
  | { type: "ignored"; tag: string };

function lsn(r: BufferReader): Lsn {
  const hi = r.uint32();
  const lo = r.uint32();
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** A PostgreSQL timestamp (µs since 2000-01-01) as ms since the Unix epoch. */
function timestampMs(r: BufferReader): number {
  const hi = r.int32();
  const lo = r.uint32();
  return (hi * 2 ** 32 + lo) / 1000 + PG_EPOCH_MS;
}

export function formatLsn(l: Lsn): string {
  return `${(l >> 32n).toString(16).toUpperCase()}/${(l & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function parseLsn(text: string): Lsn {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new TypeError(`Not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** One CopyData payload of a START_REPLICATION stream, or null for a kind this client does not use. */
export function readStreamMessage(chunk: Buffer): StreamMessage | null {
  const r = new BufferReader();
  r.setBuffer(1, chunk);
  switch (chunk[0]) {
    case 0x77: {
      // 'w': start, end of WAL on the server, send time, then the payload
      const start = lsn(r);
      const end = lsn(r);
      return { tag: "xlog", start, end, body: chunk.subarray(25) };
    }
    case 0x6b: {
      // 'k': end of WAL sent, send time, reply requested
      const walEnd = lsn(r);
      timestampMs(r);
      return { tag: "keepalive", walEnd, replyRequested: r.byte() === 1 };
    }
    default:
      return null;
  }
}

function tuple(r: BufferReader): TupleValue[] {
  const n = r.int16();
  const values: TupleValue[] = new Array<TupleValue>(n);
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    if (kind === 0x74 /* t */) values[i] = r.string(r.int32());
    else if (kind === 0x62 /* b: binary, never asked for */) values[i] = r.bytes(r.int32()).toString("hex");
    else if (kind === 0x75 /* u */) values[i] = UNCHANGED;
    else values[i] = null; // n
  }
  return values;
}

/** One pgoutput message (protocol version 1). */
export function readPgoutput(body: Buffer): PgoutputMessage {
  const r = new BufferReader();
  r.setBuffer(1, body);
  const tag = String.fromCharCode(body[0] ?? 0);
  switch (tag) {
    case "B": {
      const finalLsn = lsn(r);
      const commitMs = timestampMs(r);
      return { type: "begin", finalLsn, commitMs, xid: r.uint32() };
    }
    case "C": {
      r.byte(); // flags, unused
      const commitLsn = lsn(r);
      const endLsn = lsn(r);
      return { type: "commit", commitLsn, endLsn, commitMs: timestampMs(r) };
    }
    case "R": {
      const relid = r.uint32();
      const namespace = r.cstring();
      const name = r.cstring();
      const replicaIdentity = String.fromCharCode(r.byte());
      const n = r.int16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.byte();
        const colName = r.cstring();
        const typeOid = r.uint32();
        r.int32(); // type modifier
        columns.push({ name: colName, flags, typeOid });
      }
      return { type: "relation", relid, namespace, name, replicaIdentity, columns };
    }
    case "I": {
      const relid = r.uint32();
      r.byte(); // 'N'
      return { type: "insert", relid, row: tuple(r) };
    }
    case "U": {
      const relid = r.uint32();
      let kind = r.byte();
      let key: TupleValue[] | undefined;
      let old: TupleValue[] | undefined;
      if (kind === 0x4b /* K */) key = tuple(r);
      else if (kind === 0x4f /* O */) old = tuple(r);
      if (key || old) kind = r.byte(); // then 'N'
      return { type: "update", relid, key, old, row: tuple(r) };
    }
    case "D": {
      const relid = r.uint32();
      const kind = r.byte();
      const values = tuple(r);
      return kind === 0x4f ? { type: "delete", relid, old: values } : { type: "delete", relid, key: values };
    }
    case "T": {
      const n = r.uint32();
      r.byte(); // options: cascade, restart identity
      const relids: number[] = [];
      for (let i = 0; i < n; i++) relids.push(r.uint32());
      return { type: "truncate", relids };
    }
    default:
      return { type: "ignored", tag };
  }
}

/**
 * A standby status update ('r'), framed as CopyData: written, flushed and applied up to `flushed` (the
 * slot's confirmed position moves to it), the client's clock, and whether the server should answer now.
 */
export function standbyStatus(flushed: Lsn, replyRequested: boolean, nowMs = Date.now()): Buffer {
  const b = Buffer.alloc(34);
  b.write("r", 0, "latin1");
  for (const at of [1, 9, 17]) b.writeBigUInt64BE(flushed, at);
  b.writeBigInt64BE(BigInt(Math.round((nowMs - PG_EPOCH_MS) * 1000)), 25);
  b.writeUInt8(replyRequested ? 1 : 0, 33);
  return serialize.copyData(b);
}

/** CopyDone: the client ends the stream; the server answers with CopyDone and CommandComplete. */
export function copyDone(): Buffer {
  return serialize.copyDone();
}
