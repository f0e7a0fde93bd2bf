/** When a supervised daemon is restarted, and when the supervisor gives up. */
export interface RestartPolicyOptions {
  /** Delay before the first restart (ms). */
  readonly initialDelayMs: number;
  /** Each further restart waits this many times longer… */
  readonly factor: number;
  /** …up to this delay (ms). */
  readonly maxDelayMs: number;
  /** A daemon that stayed up this long counts as healthy: the delay starts over (ms). */
  readonly resetAfterMs: number;
  /** A death within this long of its start is a fast crash (ms)… */
  readonly fastCrashMs: number;
  /** …and this many fast crashes in a row make the supervisor give up. */
  readonly maxFastCrashes: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  initialDelayMs: 100,
  factor: 2,
  maxDelayMs: 15_000,
  resetAfterMs: 30_000,
  fastCrashMs: 10_000,
  maxFastCrashes: 5,
};

export type RestartDecision = { readonly restartInMs: number } | { readonly giveUp: string };

/** Exponential backoff with a reset after a healthy run, and a limit on fast crashes. */
export class RestartPolicy {
  private readonly options: RestartPolicyOptions;
  private nextDelayMs: number;
  private fastCrashes = 0;

  constructor(options: Partial<RestartPolicyOptions> = {}) {
    this.options = { ...DEFAULT_RESTART_POLICY, ...options };
    this.nextDelayMs = this.options.initialDelayMs;
  }

  /** Records a death after `uptimeMs` and says what to do next. */
  onDeath(uptimeMs: number): RestartDecision {
    const { initialDelayMs, factor, maxDelayMs, resetAfterMs, fastCrashMs, maxFastCrashes } = this.options;
    if (uptimeMs >= resetAfterMs) this.nextDelayMs = initialDelayMs;
    this.fastCrashes = uptimeMs < fastCrashMs ? this.fastCrashes + 1 : 0;
    if (this.fastCrashes >= maxFastCrashes) {
      return { giveUp: `it died ${this.fastCrashes} times in a row within ${fastCrashMs / 1000} s of starting` };
    }
    const restartInMs = this.nextDelayMs;
    this.nextDelayMs = Math.min(this.nextDelayMs * factor, maxDelayMs);
    return { restartInMs };
  }
}
