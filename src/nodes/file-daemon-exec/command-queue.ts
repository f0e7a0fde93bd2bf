import { FileDaemonError } from "../../protocol/errors";
/** How many submissions may wait (not counting running ones) before new ones are refused. */
export const DEFAULT_MAX_WAITING = 100;

/** A unit of work; `signal` fires when it must stop (kill request, node closed). */
export type QueueTask<T> = (signal: AbortSignal) => Promise<T>;

export class QueueFullError extends FileDaemonError {
  constructor(maxWaiting: number) {
    super("QUEUE_FULL", `the queue is full (${maxWaiting} messages already wait for the daemon); this message was refused and its command not run. Send messages more slowly, or add channels to the daemon`);
    this.name = "QueueFullError";
  }
}

export class QueueClosedError extends FileDaemonError {
  constructor(reason: string) {
    super("QUEUE_CLOSED", `${reason}; the command was not run`);
    this.name = "QueueClosedError";
  }
}

interface Waiting<T> {
  readonly task: QueueTask<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * First in, first out: runs up to `concurrency` tasks at once and keeps at most `maxWaiting`
 * more waiting; beyond that `push` rejects with QueueFullError, never drops silently.
 */
export class CommandQueue<T> {
  private readonly waiting: Waiting<T>[] = [];
  private readonly running = new Set<AbortController>();
  private closedReason: string | null = null;
  private drained: (() => void) | null = null;

  constructor(
    private concurrency: number,
    readonly maxWaiting: number = DEFAULT_MAX_WAITING,
    private readonly onChange: () => void = () => undefined,
  ) {
    checkCount(concurrency, "concurrency");
    checkCount(maxWaiting, "maxWaiting", 0);
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.running.size;
  }

  setConcurrency(concurrency: number): void {
    checkCount(concurrency, "concurrency");
    this.concurrency = concurrency;
    this.startWaiting();
  }

  push(task: QueueTask<T>): Promise<T> {
    if (this.closedReason !== null) return Promise.reject(new QueueClosedError(this.closedReason));
    if (this.waiting.length === 0 && this.running.size < this.concurrency) return this.run(task);
    if (this.waiting.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.maxWaiting));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ task, resolve, reject });
      this.onChange();
    });
  }

  /** Aborts every running task (waiting ones stay queued); returns how many. */
  abortRunning(reason: string): number {
    for (const controller of this.running) controller.abort(new Error(reason));
    return this.running.size;
  }

  /** Rejects every waiting task with QueueClosedError(reason); returns how many. */
  clear(reason: string): number {
    const dropped = this.waiting.splice(0);
    for (const item of dropped) item.reject(new QueueClosedError(reason));
    if (dropped.length > 0) this.onChange();
    return dropped.length;
  }

  /** Refuses new tasks, rejects waiting ones, aborts running ones; resolves once those settled. */
  close(reason: string): Promise<void> {
    this.closedReason = reason;
    this.clear(reason);
    this.abortRunning(reason);
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }

  private run(task: QueueTask<T>): Promise<T> {
    const controller = new AbortController();
    this.running.add(controller);
    this.onChange();
    const finish = () => {
      this.running.delete(controller);
      if (this.running.size === 0) this.drained?.();
      this.startWaiting();
      this.onChange();
    };
    let promise: Promise<T>;
    try {
      promise = task(controller.signal);
    } catch (err) {
      promise = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return promise.finally(finish);
  }

  private startWaiting(): void {
    while (this.closedReason === null && this.running.size < this.concurrency) {
      const next = this.waiting.shift();
      if (next === undefined) break;
      this.run(next.task).then(next.resolve, next.reject);
    }
  }
}

function checkCount(value: number, name: string, min = 1): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be a whole number of at least ${min}, got ${value}`);
}
