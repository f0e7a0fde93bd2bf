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

/** A channel file larger than this is never read (§8): no record can be that long. */
export function maxChannelFileBytes(captureLimit: number): number {
  return 1024 * 1024 + 3 * captureLimit;
}

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
