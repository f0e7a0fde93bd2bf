/**
 * The protocol's numbers (PROTOCOL.md), each defined here once: every party reads them from
 * this file, and the tables of PROTOCOL.md name them.
 */

/** Largest command accepted, in UTF-8 bytes (§4; well under Linux's 128 KiB per-argument limit). */
export const MAX_COMMAND_BYTES = 65_536;

/** The largest timeout line 2 may carry, in ms (§4; what a timer can hold). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** Captured output is cut after this many bytes per stream by default (§4); the rest is read and dropped. */
export const DEFAULT_CAPTURE_LIMIT = 65_536;

/** The most bytes line 2's `stdin` may hold, decoded (§4). */
export const MAX_STDIN_BYTES = 1024 * 1024;

/** The most UTF-8 bytes of line 2's `env`: names, values and one `=` and NUL each, as the kernel counts them (§4). */
export const MAX_ENV_BYTES = 65_536;

/** The longest `cwd` line 2 may carry, in UTF-8 bytes (§4; Linux's PATH_MAX). */
export const MAX_CWD_BYTES = 4096;

/** A channel file larger than this is never read (§8): no record can be that long. */
export function maxChannelFileBytes(captureLimit: number): number {
  return 2 * 1024 * 1024 + 3 * captureLimit;
}

/** A line of streamed output longer than this many bytes is cut into parts (§5, "stream"). */
export const STREAM_LINE_MAX = 8192;

/** A stream file that has reached this size is replaced by the next one (§5, "stream"). */
export const STREAM_FILE_MAX = 1024 * 1024;

/** How long the daemon holds a command's output for a follower that has not opened the current stream file (§5). */
export const STREAM_FOLLOWER_WAIT_MS = 5000;

/** Default staleness of a lock, in ms (§2; proper-lockfile's default). */
export const DEFAULT_STALE_MS = 10_000;

/** The smallest staleness any party uses (proper-lockfile's own floor): smaller values are raised to it. */
export const MIN_STALE_MS = 2000;

/** The staleness in force for a requested or published one (§2). */
export function effectiveStale(stale: number | undefined): number {
  return Math.max(MIN_STALE_MS, stale ?? DEFAULT_STALE_MS);
}

/** File mode of everything the protocol creates (§1, §8): owner-only unless the daemon is told otherwise. */
export const DEFAULT_FILE_MODE = 0o600;

/** How long the daemon keeps a result nobody collects (§7): max(10 min, 20 × sleep_time). */
export function resultTtlMs(sleepMs: number): number {
  return Math.max(600_000, 20 * sleepMs);
}
