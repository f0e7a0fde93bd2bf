/** Resolves after `ms`, or as soon as `abort` fires (never rejects; the timer is cleared). */
export function pause(ms: number, abort?: AbortSignal): Promise<void> {
  if (abort?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      abort?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    abort?.addEventListener("abort", done, { once: true });
  });
}

/** Resolves with `promise`'s value, or with `fallback` as soon as `abort` fires. */
export function untilAborted<T>(promise: Promise<T>, abort: AbortSignal, fallback: T): Promise<T> {
  if (abort.aborted) return Promise.resolve(fallback);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(fallback);
    abort.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        abort.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        abort.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
