import fs from "node:fs";
import path from "node:path";
import lockfile from "proper-lockfile";
import { fromFsError } from "../errors";
import { lockPath } from "../paths";

export interface LockOptions {
  /** A lock whose mtime is further than this from now (either way) is stale. */
  readonly stale: number;
}

/** A lock this process took. Synchronous: every hold in the protocol is a few file operations. */
export interface HeldLock {
  /**
   * Whether the lock directory is still the one this process made: a party frozen longer than
   * `stale` (SIGSTOP, a swapping Pi) may have lost it to a stale takeover, and must then not
   * write, nor act on what it read (PROTOCOL.md §2, "lost lock").
   */
  stillHeld(): boolean;
  /** Removes the lock, unless it was lost: then the directory is the new holder's, and stays. */
  release(): void;
}

// proper-lockfile creates the lock directory with the process umask; ours are owner-only.
// Only the synchronous methods its sync API calls (lib/adapter.js): it copies the object it is
// given on every lockSync/unlockSync, and a copy of the whole fs module was a tenth of a
// command's file work in Node-RED's CPU profile.
export const privateFs = {
  mkdirSync: (dir: string) => fs.mkdirSync(dir, 0o700),
  statSync: fs.statSync,
  rmdirSync: fs.rmdirSync,
  utimesSync: fs.utimesSync,
  realpathSync: fs.realpathSync,
} as unknown as typeof fs;

// Lets proper-lockfile forget a lost lock (its refresh timer) without removing the new holder's directory.
const keepDirectoryFs = { ...privateFs, rmdirSync: () => undefined } as unknown as typeof fs;

/**
 * One attempt to take the lock on `file` (the directory `<file>.lock`).
 * Returns the held lock, or null when another live holder has it.
 */
export function tryLock(file: string, options: LockOptions): HeldLock | null {
  const held = attempt(file, options);
  if (held !== "busy") return held;
  // proper-lockfile only calls a lock stale when its mtime is in the past. After the clock
  // jumps back (a Pi without RTC syncing NTP) a dead holder's mtime lies in the future and
  // would block everyone until the clock catches up, so that counts as stale too.
  if (!removeIfFromTheFuture(lockPath(file), options.stale)) return null;
  const again = attempt(file, options);
  return again === "busy" ? null : again;
}

function attempt(file: string, options: LockOptions): HeldLock | "busy" {
  try {
    lockfile.lockSync(file, { stale: options.stale, realpath: false, fs: privateFs, onCompromised: () => undefined });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOCKED" || lostARace(err, file)) return "busy";
    throw fromFsError(err, lockPath(file), "cannot lock");
  }
  return heldLock(file);
}

function heldLock(file: string): HeldLock {
  const dir = lockPath(file);
  const identity = identityOf(dir);
  const stillHeld = () => identity !== null && sameIdentity(identity, identityOf(dir));
  return {
    stillHeld,
    release: () => {
      const owned = stillHeld();
      try {
        lockfile.unlockSync(file, { realpath: false, fs: owned ? privateFs : keepDirectoryFs });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ERELEASED" && code !== "ENOTACQUIRED" && code !== "ENOENT") throw err;
      }
    },
  };
}

interface Identity {
  readonly ino: number;
  readonly mtimeMs: number;
}

function identityOf(dir: string): Identity | null {
  try {
    const stat = fs.statSync(dir);
    return { ino: stat.ino, mtimeMs: stat.mtimeMs };
  } catch {
    return null;
  }
}

function sameIdentity(a: Identity, b: Identity | null): boolean {
  return b !== null && a.ino === b.ino && a.mtimeMs === b.mtimeMs;
}

/** ENOENT in a directory that exists: another party removed the lock we were creating (a stale takeover). */
function lostARace(err: unknown, file: string): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT" && fs.existsSync(path.dirname(file));
}

function removeIfFromTheFuture(dir: string, stale: number): boolean {
  try {
    const stat = fs.statSync(dir);
    if (stat.mtimeMs <= Date.now() + stale) return false;
    fs.rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT";
  }
}
