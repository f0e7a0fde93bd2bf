/**
 * A counter that waiters sleep on. Reading `generation` before looking at the files and
 * passing it to `wait` closes the gap where a change lands between the look and the sleep.
 * A waiter may name the files it cares about: changes to others do not wake it.
 */
export class ChangeSignal {
  private count = 0;
  private readonly lastChange = new Map<string, number>();
  private lastUnknown = 0;
  private readonly waiters = new Set<{ readonly names: ReadonlySet<string> | null; readonly wake: (deferred?: unknown) => void }>();

  get generation(): number {
    return this.count;
  }

  /** Records a change of file `name` (a base name), or of anything when `name` is null. */
  notify(name: string | null = null): void {
    this.count++;
    if (name === null) this.lastUnknown = this.count;
    else this.lastChange.set(name, this.count);
    for (const waiter of this.waiters) {
      if (name === null || waiter.names === null || waiter.names.has(name)) waiter.wake(true);
    }
  }

  /** Resolves on the next relevant change after `since`, after `ms`, or when `abort` fires. */
  wait(since: number, ms: number, abort?: AbortSignal, names: ReadonlySet<string> | null = null): Promise<void> {
    if (this.changedSince(since, names) || abort?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        names,
        // A burst of file events wakes each waiter once per turn of the event loop, not once
        // per event (`=== true`: the abort listener passes an Event).
        wake: (deferred?: unknown) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          abort?.removeEventListener("abort", waiter.wake);
          if (deferred === true) setImmediate(resolve);
          else resolve();
        },
      };
      const timer = setTimeout(waiter.wake, ms);
      this.waiters.add(waiter);
      abort?.addEventListener("abort", waiter.wake, { once: true });
    });
  }

  private changedSince(since: number, names: ReadonlySet<string> | null): boolean {
    if (this.count === since) return false;
    if (names === null) return true;
    for (const name of names) if ((this.lastChange.get(name) ?? 0) > since) return true;
    // A change of unknown name (a watcher error) counts for everyone.
    return this.lastUnknown > since;
  }
}
