import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type FileDaemonErrorCode, isErrorCode } from "../protocol/errors";
import { channelFiles, type DaemonFiles } from "../protocol/paths";

/**
 * Why a managed daemon cannot start until someone fixes its directory or files: the full
 * reason and the fix, as people read it. The supervisor keeps watching and starts the daemon
 * once the cause is gone.
 */
export interface StartProblem {
  readonly code: FileDaemonErrorCode;
  readonly message: string;
}

/** Codes with which the daemon refuses to start until the operator changes something. */
const OPERATOR_CODES: readonly FileDaemonErrorCode[] = ["NO_DIRECTORY", "UNSAFE_FILES", "PERMISSION", "ALREADY_RUNNING"];

/**
 * Checked before the supervisor opens the daemon's log in the directory (`<commands>.log`):
 * a directory that is missing, not a directory, or that this user cannot reach.
 */
export function directoryProblem(files: DaemonFiles): StartProblem | null {
  for (const dir of files.directories) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        const parentMissing = !fs.existsSync(path.dirname(dir));
        return { code: "NO_DIRECTORY", message: `the directory ${dir} does not exist: create it with mkdir ${parentMissing ? "-p " : ""}-m 700 ${dir}` };
      }
      if (code === "EACCES" || code === "EPERM") return { code: "PERMISSION", message: `cannot reach the directory ${dir}: permission denied (${code}); ${userFix(dir)}` };
      return { code: "IO", message: `cannot use the directory ${dir}: ${(err as Error).message}` };
    }
    if (!stat.isDirectory()) return { code: "NO_DIRECTORY", message: `${dir} is not a directory: put the commands and results files in a directory (mkdir -m 700 DIR), or remove ${dir}` };
  }
  return null;
}

/** Why the daemon's log could not be opened, with what to do. */
export function logFileProblem(err: unknown, logFile: string): StartProblem {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const dir = path.dirname(logFile);
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return { code: "PERMISSION", message: `cannot write the daemon's log ${logFile}: permission denied (${code}); ${userFix(dir)}` };
  }
  if (code === "ENOENT") return { code: "NO_DIRECTORY", message: `the directory ${dir} does not exist: create it with mkdir -m 700 ${dir}` };
  return { code: "IO", message: `cannot open the daemon's log ${logFile}: ${err instanceof Error ? err.message : String(err)}` };
}

function userFix(dir: string): string {
  const { username, uid } = os.userInfo();
  return `the directory must be writable by the user Node-RED runs as (${username}, uid ${uid}): run sudo chown ${username} ${dir} && sudo chmod 700 ${dir}`;
}

/**
 * The daemon's own reason from the last line of its log, when it refused to start with a
 * code the operator can fix. The CLI ends each start-up error with its code in brackets
 * (src/engine/cli.ts); the line is `TIME file-daemon[PID] error: MESSAGE [CODE]`.
 */
export function refusalFromLog(lastLine: string): StartProblem | null {
  const [, message, code] = / error: (.*\[([A-Z_]+)\])$/.exec(lastLine.trim()) ?? [];
  if (message === undefined || !isErrorCode(code) || !OPERATOR_CODES.includes(code)) return null;
  return { code, message };
}

/**
 * What the daemon's start-up checks look at, without times and sizes: whether each directory
 * and file exists, its type, mode, owner, links and inode. A change means someone may have
 * fixed the cause (mkdir, chmod, chown, rm), so the daemon is worth starting again.
 */
export function filesFingerprint(files: DaemonFiles, channels: number): string {
  const parts = files.directories.map((dir) => describe(dir, true));
  for (let i = 0; i < channels; i++) {
    const channel = channelFiles(files, i);
    for (const file of [channel.commands, channel.results, channel.taken]) parts.push(describe(file, false));
  }
  parts.push(describe(files.info, false), describe(files.daemonLock, false));
  return parts.join("\n");
}

function describe(file: string, follow: boolean): string {
  try {
    const stat = follow ? fs.statSync(file) : fs.lstatSync(file);
    return `${file} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.nlink} ${stat.ino}`;
  } catch (err) {
    return `${file} ${(err as NodeJS.ErrnoException).code ?? "?"}`;
  }
}
