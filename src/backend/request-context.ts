/**
 * What a backend call needs to know about the request it serves: its id for the logs and its deadline,
 * which cuts the call's timeout. It is handed down explicitly (read options, a write's origin) rather than
 * kept in an AsyncLocalStorage, whose promise hooks would tax every promise of the process.
 */
export interface RequestContext {
  /** the X-Request-Id, given by the client or generated */
  id: string;
  /** ms since the epoch by which the answer must be given */
  deadline: number;
  /**
   * Set once the answer is sent. Work the request started in the background (cache repairs, refreshes)
   * may still carry this context, but no longer its deadline.
   */
  answered?: boolean;
}
