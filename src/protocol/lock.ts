import fs, { promises as fsp } from "node:fs";
import lockfile from "proper-lockfile";
import { fromFsError } from "./errors";
import { lockPath } from "./paths";

/** Default staleness of a lock, in ms (proper-lockfile's default; its minimum is 2000). */
export const DEFAULT_STALE_MS = 10_000;

export type Release = () => Promise<void>;

export interface LockOptions {
  /** A lock whose mtime is further than this from now (either way) is stale. */
  readonly stale: number;
  /** Called when a held lock was taken over or could not be refreshed. */
  readonly onCompromised?: (err: Error) => void;
}

// proper-lockfile creates the lock directory with the process umask; ours are owner-only.
export const privateFs = { ...fs, mkdir: (dir: string, cb: (err: NodeJS.ErrnoException | null) => void) => fs.mkdir(dir, 0o700, cb) } as unknown as typeof fs;

/**
 * One attempt to take the lock on `file` (the directory `<file>.lock`).
 * Resolves to a release function, or to null when another live holder has it.
 */
export async function tryLock(file: string, options: LockOptions): Promise<Release | null> {
  const attempt = () =>
    lockfile.lock(file, {
      stale: options.stale,
      realpath: false,
      retries: 0,
      fs: privateFs,
      onCompromised: options.onCompromised ?? (() => undefined),
    });
  try {
    return await attempt();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw fromFsError(err, lockPath(file), "cannot lock");
  }
  // proper-lockfile only calls a lock stale when its mtime is in the past. After the clock
  // jumps back (a Pi without RTC syncing NTP) a dead holder's mtime lies in the future and
  // would block everyone until the clock catches up, so that counts as stale too.
  if (!(await removeIfFromTheFuture(lockPath(file), options.stale))) return null;
  try {
    return await attempt();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOCKED") return null;
    throw fromFsError(err, lockPath(file), "cannot lock");
  }
}

async function removeIfFromTheFuture(dir: string, stale: number): Promise<boolean> {
  try {
    const stat = await fsp.stat(dir);
    if (stat.mtimeMs <= Date.now() + stale) return false;
    await fsp.rmdir(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT";
  }
}

/** Releases a lock; a lock that is already gone (taken over as stale) is not an error. */
export async function release(unlock: Release): Promise<void> {
  try {
    await unlock();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ERELEASED" && code !== "ENOTACQUIRED" && code !== "ENOENT") throw err;
  }
}
