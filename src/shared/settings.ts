import { FileDaemonError } from "../protocol/errors";

export const DEFAULT_SLEEP_TIME = 0.5;
export const MAX_SLEEP_TIME = 3600;
export const MAX_CHANNELS = 64;
/** Seconds a submitter waits for a daemon to appear (one may be starting: ~0.1 s here, over a second on a Pi). */
export const DEFAULT_DAEMON_WAIT = 5;

/** Checks a sleep time given in seconds, as the seed takes it. */
export function sleepTimeMs(sleepTime: unknown): number {
  const value = typeof sleepTime === "string" && sleepTime.trim() !== "" ? Number(sleepTime) : sleepTime;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > MAX_SLEEP_TIME) {
    throw new FileDaemonError("BAD_OPTION", `sleep time must be a number of seconds above 0 and at most ${MAX_SLEEP_TIME}, got ${JSON.stringify(sleepTime)}`);
  }
  return Math.max(1, Math.round(value * 1000));
}

/** Checks a timeout in seconds (0 = none) and returns ms. */
export function timeoutMs(timeout: unknown, name = "timeout"): number {
  if (timeout === undefined || timeout === null || timeout === "") return 0;
  const value = typeof timeout === "string" ? Number(timeout) : timeout;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 2_147_483) {
    throw new FileDaemonError("BAD_OPTION", `${name} must be a number of seconds from 0 (none) to 2147483, got ${JSON.stringify(timeout)}`);
  }
  return Math.round(value * 1000);
}

export function channelCount(channels: unknown): number {
  const value = typeof channels === "string" ? Number(channels) : channels;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > MAX_CHANNELS) {
    throw new FileDaemonError("BAD_OPTION", `channels must be a whole number from 1 to ${MAX_CHANNELS}, got ${JSON.stringify(channels)}`);
  }
  return value;
}

export function checkPath(file: unknown, name: string): string {
  if (typeof file !== "string" || file.trim() === "" || file.includes("\0")) {
    throw new FileDaemonError("BAD_OPTION", `the ${name} file path must be a non-empty string, got ${JSON.stringify(file)}`);
  }
  return file;
}
