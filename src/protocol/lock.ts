import fs from "node:fs";
import path from "node:path";
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
export const privateFs = {
  ...fs,
  mkdir: (dir: string, cb: (err: NodeJS.ErrnoException | null) => void) => fs.mkdir(dir, 0o700, cb),
  mkdirSync: (dir: string) => fs.mkdirSync(dir, 0o700),
} as unknown as typeof fs;

/**
 * One attempt to take the lock on `file` (the directory `<file>.lock`).
 * Resolves to a release function, or to null when another live holder has it.
 */
export async function tryLock(file: string, options: LockOptions): Promise<Release | null> {
  // Synchronous for speed (see atomic-write.ts); the refresh timer still runs while held.
  const attempt = (): Release => {
    const unlock = lockfile.lockSync(file, {
      stale: options.stale,
      realpath: false,
      fs: privateFs,
      onCompromised: options.onCompromised ?? (() => undefined),
    });
    return async () => unlock();
  };
  try {
    return attempt();
  } catch (err) {
    if (lostARace(err, file)) return null;
    if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw fromFsError(err, lockPath(file), "cannot lock");
  }
  // proper-lockfile only calls a lock stale when its mtime is in the past. After the clock
  // jumps back (a Pi without RTC syncing NTP) a dead holder's mtime lies in the future and
  // would block everyone until the clock catches up, so that counts as stale too.
  if (!(await removeIfFromTheFuture(lockPath(file), options.stale))) return null;
  try {
    return attempt();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOCKED" || lostARace(err, file)) return null;
    throw fromFsError(err, lockPath(file), "cannot lock");
  }
}

/** ENOENT in a directory that exists: another party removed the lock we were creating (a stale takeover). */
function lostARace(err: unknown, file: string): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT" && fs.existsSync(path.dirname(file));
}

async function removeIfFromTheFuture(dir: string, stale: number): Promise<boolean> {
  try {
    const stat = fs.statSync(dir);
    if (stat.mtimeMs <= Date.now() + stale) return false;
    fs.rmdirSync(dir);
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
