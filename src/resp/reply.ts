/**
 * The reply side of RESP: values to bytes, for RESP2 and RESP3 (`HELLO 3`). A reply is its encoded text,
 * or a Buffer when it carries bytes that are not UTF-8 (an ECHO of binary). Only the types that differ
 * between the versions (null, map) need the protocol.
 */
export type Reply = string | Buffer;
export type Protocol = 2 | 3;

const CRLF = "\r\n";

export const OK = "+OK\r\n";

export function simple(text: string): string {
  return `+${oneLine(text)}${CRLF}`;
}

export function error(code: string, message: string): string {
  return `-${code} ${oneLine(message)}${CRLF}`;
}

export function integer(n: number): string {
  return `:${n}${CRLF}`;
}

export function bulk(value: string | Buffer): Reply {
  if (typeof value === "string") return `$${Buffer.byteLength(value)}${CRLF}${value}${CRLF}`;
  return Buffer.concat([Buffer.from(`$${value.length}${CRLF}`), value, Buffer.from(CRLF)]);
}

export function nil(proto: Protocol): string {
  return proto === 3 ? `_${CRLF}` : `$-1${CRLF}`;
}

export function array(items: Reply[]): Reply {
  return join(`*${items.length}${CRLF}`, items);
}

/** A RESP3 map; in RESP2 the flat array of keys and values clients expect instead. */
export function map(entries: [Reply, Reply][], proto: Protocol): Reply {
  const flat = entries.flat();
  return proto === 3 ? join(`%${entries.length}${CRLF}`, flat) : array(flat);
}

/** A map of plain names to replies, the common case. */
export function record(fields: Record<string, Reply>, proto: Protocol): Reply {
  return map(
    Object.entries(fields).map(([k, v]) => [bulk(k), v]),
    proto,
  );
}

function join(head: string, items: Reply[]): Reply {
  let text = head;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (typeof item !== "string") return joinBuffers(head, items);
    text += item;
  }
  return text;
}

function joinBuffers(head: string, items: Reply[]): Buffer {
  return Buffer.concat([
    Buffer.from(head),
    ...items.map((i) => (typeof i === "string" ? Buffer.from(i) : i)),
  ]);
}

/** Simple strings and errors end at the first CR or LF: anything else would break the frame. */
function oneLine(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]+/g, " ") : text;
}
