/**
 * A caller that may stop waiting for its write: one still waiting to be sent is then dropped (nothing
 * written). What an AbortSignal does for this, without an EventTarget built for every write.
 */
export class Withdrawal {
  private aborted = false;
  private listener: (() => void) | undefined;

  get withdrawn(): boolean {
    return this.aborted;
  }

  /** The caller stops waiting; the listener, if any, runs once. */
  withdraw(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }

  /** What to do when the caller stops waiting (one listener: the queue holding the write). */
  onWithdraw(listener: () => void): void {
    this.listener = listener;
  }
}
