import fs from "node:fs";
import { decodeDaemonInfo } from "../daemon-info";
import { isDaemonAlive } from "./live-daemon";
import { FileDaemonError, fromFsError } from "../errors";
import type { DaemonFiles } from "../paths";

/**
 * The daemon lock `COMMANDS.daemon.lock` (PROTOCOL.md §3). Unlike the channel locks it is
 * never judged by its mtime while `COMMANDS.daemon` names a live process: a daemon frozen
 * longer than `stale` (SIGSTOP, a swapping Pi) or one whose clock jumped is still the one
 * serving, and a second daemon taking over would run commands twice. The owner's liveness
 * (pid and start time) decides; the mtime only matters while no owner is named.
 *
 * Not detected: a daemon frozen between making the lock and publishing `COMMANDS.daemon` for
 * longer than `stale` loses the lock to the next daemon started.
 */

/** Who this daemon is, as `COMMANDS.daemon` names it. */
export interface Self {
  readonly pid: number;
  readonly startTime: string | null;
}

export type LockState = "held" | "gone" | "unknown";

/** How often a starting daemon looks again at a lock whose owner has yet to publish itself (ms). */
const STARTING_POLL_MS = 50;

/**
 * Takes the daemon lock. Throws ALREADY_RUNNING when a live daemon holds it. A lock whose
 * `COMMANDS.daemon` names a dead process is dead however fresh. With `reclaim`, one that
 * names this process is ours already (kept while the directory could not be looked at).
 */
export async function takeDaemonLock(files: DaemonFiles, self: Self, stale: number, reclaim: boolean): Promise<void> {
  const deadline = performance.now() + stale;
  for (;;) {
    try {
      fs.mkdirSync(files.daemonLock, 0o700);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw fromFsError(err, files.daemonLock, "cannot lock");
    }
    const holder = judgeHolder(files, self, stale);
    if (holder === "self" && reclaim) return;
    if (holder === "dead") {
      removeDeadLock(files);
      continue;
    }
    if (holder === "starting" && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, STARTING_POLL_MS));
      continue;
    }
    throw alreadyRunning(files, holder);
  }
}

type Holder = "self" | "dead" | "starting" | { readonly pid: number } | "unnamed";

function judgeHolder(files: DaemonFiles, self: Self, stale: number): Holder {
  let content: string | null;
  try {
    content = fs.readFileSync(files.info, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw fromFsError(err, files.info, "cannot read");
    content = null;
  }
  const info = content === null ? null : decodeDaemonInfo(content);
  if (info !== null) {
    if (info.pid === self.pid && info.startTime === self.startTime) return "self";
    return isDaemonAlive(info) ? { pid: info.pid } : "dead";
  }
  // Nobody named: a daemon between mkdir and publishing (alive, its lock fresh), or one that died there.
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(files.daemonLock).mtimeMs;
  } catch {
    return "dead";
  }
  const age = Math.abs(Date.now() - mtimeMs);
  if (age > stale) return "dead";
  return content === null ? "starting" : "unnamed";
}

function removeDeadLock(files: DaemonFiles): void {
  fs.rmSync(files.info, { force: true });
  try {
    fs.rmdirSync(files.daemonLock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw fromFsError(err, files.daemonLock, "cannot remove the dead daemon's lock");
  }
}

function alreadyRunning(files: DaemonFiles, holder: Holder): FileDaemonError {
  if (typeof holder === "object" || holder === "self") {
    const pid = holder === "self" ? process.pid : holder.pid;
    return new FileDaemonError("ALREADY_RUNNING", `file-daemon pid ${pid} already serves ${files.commands}; stop it first, or use other files`);
  }
  return new FileDaemonError("ALREADY_RUNNING", `${files.daemonLock} is held but ${files.info} does not say by whom; if no file-daemon runs, remove ${files.daemonLock}`);
}

/** Whether the lock directory is still there. "unknown" when it cannot be looked at (a directory turned unreadable): never read as "gone". */
export function daemonLockState(files: DaemonFiles): LockState {
  try {
    fs.statSync(files.daemonLock);
    return "held";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "unknown";
  }
}

/** Refreshes the lock's mtime, for people and for the rule above; "gone" when it disappeared. */
export function refreshDaemonLock(files: DaemonFiles): LockState {
  try {
    const now = new Date();
    fs.utimesSync(files.daemonLock, now, now);
    return "held";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "unknown";
  }
}

/** Removes the lock (on a clean exit, after `COMMANDS.daemon`). */
export function releaseDaemonLock(files: DaemonFiles): void {
  try {
    fs.rmdirSync(files.daemonLock);
  } catch {
    // Gone already, or the directory is unwritable now: nothing more to do.
  }
}
