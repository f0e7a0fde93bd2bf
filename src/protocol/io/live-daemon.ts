import fs from "node:fs";
import path from "node:path";
import { decodeDaemonInfo, servesFiles, type DaemonInfo, type PublishedInfo } from "../daemon-info";
import { fromFsError, type FileDaemonError } from "../errors";
import type { DaemonFiles } from "../paths";
import { isPidAlive, processStartTime } from "./liveness";

/**
 * The daemon serving these files, or null. Alive means: its info file names a process that
 * still runs (same start time, so a reused pid does not count) and its lock directory exists.
 * Throws PERMISSION when the files cannot be looked at: that is not "no daemon".
 */
export function readLiveDaemon(files: DaemonFiles): PublishedInfo | null {
  let info: PublishedInfo | null;
  try {
    info = decodeDaemonInfo(fs.readFileSync(files.info, "utf8"));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") throw fromFsError(err, files.info, "cannot read");
    return null;
  }
  if (info === null || !isDaemonAlive(info)) return null;
  try {
    fs.statSync(files.daemonLock);
  } catch {
    return null;
  }
  return info;
}

/** Whether the process `info` names still runs: same pid and, where /proc tells, the same start time. */
export function isDaemonAlive(info: Pick<DaemonInfo, "pid" | "startTime">): boolean {
  if (info.startTime !== null) return processStartTime(info.pid) === info.startTime;
  return isPidAlive(info.pid);
}

/** servesFiles (PROTOCOL.md §3) with files compared on this machine: the same path, or the same name in the same directory after symbolic links. */
export function checkServes(info: PublishedInfo, files: DaemonFiles): FileDaemonError | null {
  return servesFiles(info, files, sameFile);
}

function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return fs.realpathSync(path.dirname(a)) === fs.realpathSync(path.dirname(b)) && path.basename(a) === path.basename(b);
  } catch {
    return false;
  }
}
