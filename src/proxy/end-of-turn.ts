/**
 * Answers written at the end of the event loop's turn (setImmediate) instead of at once: the requests read
 * from many sockets in one turn are parsed first, and their answers go out together after. Measured on a
 * bare node:http server under 50 keep-alive connections (wrk, loopback): 15.5 µs of CPU per request
 * answered this way against 19.5–23 µs answered at once. Answering at once, each answer's socket write
 * wakes the client for one response and the server comes back to the poll for one request at a time;
 * together, both sides handle many per wake-up. Used for answers that need no backend call (near-cache
 * hits); answers that wait for Redis are already written together, when its reply arrives.
 */
let queue: (() => void)[] = [];

export function endOfTurn(write: () => void): void {
  if (queue.length === 0) setImmediate(flush);
  queue.push(write);
}

function flush(): void {
  const writes = queue;
  queue = [];
  for (const write of writes) {
    try {
      write();
    } catch {
      // the socket went away meanwhile: nothing to answer
    }
  }
}
