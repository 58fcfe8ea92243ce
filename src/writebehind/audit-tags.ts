/**
 * Who asked for a queued write, kept with it in the queue (the stream entry's field `a`) until the flush
 * writes its audit row: the operation, the caller's token name, the front end and the condition. When it
 * was acknowledged is the stream entry id's own time (Redis's clock when the write was queued).
 */
import type { AuditEntry, AuditOp, WriteOrigin } from "../store/adapter.js";
import { idTime, type QueuedWrite } from "./keys.js";

interface Tag {
  op?: AuditOp;
  client?: string | null;
  via?: WriteOrigin["via"];
  if_match?: number;
  if_none_match?: boolean;
}

export function auditTagOf(
  op: AuditOp,
  origin: WriteOrigin | undefined,
  conditions: { ifMatch?: number; ifNoneMatch?: boolean } = {},
): string {
  const tag: Tag = { op, client: origin?.client ?? null, via: origin?.via ?? null };
  if (conditions.ifMatch !== undefined) tag.if_match = conditions.ifMatch;
  if (conditions.ifNoneMatch) tag.if_none_match = true;
  return JSON.stringify(tag);
}

/** The audit row of a queued write; one queued without a tag is recorded with nobody as its caller. */
export function auditEntryOf(w: QueuedWrite): AuditEntry {
  let tag: Tag = {};
  try {
    if (w.tag !== undefined) tag = JSON.parse(w.tag) as Tag;
  } catch {
    // a tag that is not ours: the write is still recorded
  }
  return {
    key: w.key,
    version: w.version,
    op: tag.op ?? (w.value === null ? "delete" : "put"),
    client: typeof tag.client === "string" ? tag.client : null,
    via: tag.via === "http" || tag.via === "resp" ? tag.via : null,
    ...(typeof tag.if_match === "number" ? { ifMatch: tag.if_match } : {}),
    ...(tag.if_none_match === true ? { ifNoneMatch: true } : {}),
    acknowledgedAt: idTime(w.id),
  };
}
