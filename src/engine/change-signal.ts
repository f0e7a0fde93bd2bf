/**
 * A counter that waiters sleep on. Reading `generation` before looking at the files and
 * passing it to `wait` closes the gap where a change lands between the look and the sleep.
 */
export class ChangeSignal {
  private count = 0;
  private readonly waiters = new Set<() => void>();

  get generation(): number {
    return this.count;
  }

  notify(): void {
    this.count++;
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Resolves on the next change after `since`, after `ms`, or when `abort` fires. */
  wait(since: number, ms: number, abort?: AbortSignal): Promise<void> {
    if (this.count !== since || abort?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        abort?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      abort?.addEventListener("abort", done, { once: true });
    });
  }
}
