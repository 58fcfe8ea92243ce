/**
 * Request ids for requests that bring none: UUID-shaped, a random prefix drawn once per process and a
 * counter in the last group. Unique within the process (and, by the prefix, across processes) at the
 * cost of a counter increment instead of a random UUID per request.
 */
import { randomUUID } from "node:crypto";

const COUNTER_SPAN = 2 ** 48;

let prefix = randomUUID().slice(0, 24);
let counter = 0;

export function nextRequestId(): string {
  if (++counter >= COUNTER_SPAN) {
    prefix = randomUUID().slice(0, 24);
    counter = 1;
  }
  return prefix + counter.toString(16).padStart(12, "0");
}
