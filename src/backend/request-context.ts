/**
 * What a backend call needs to know about the request it serves, without every signature carrying it:
 * the router runs each request inside this context, the backend guard reads it.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface RequestContext {
  /** the X-Request-Id, given by the client or generated */
  id: string;
  /** ms since the epoch by which the answer must be given */
  deadline: number;
  /**
   * Set once the answer is sent. Work the request started in the background (cache repairs, refreshes)
   * keeps this context, but no longer its deadline.
   */
  answered?: boolean;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runInRequest<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The request being served, or undefined for background work (flushes, repairs, the checker). */
export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}
