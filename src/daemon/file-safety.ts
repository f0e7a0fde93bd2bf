import fs from "node:fs";
import path from "node:path";
import { FileDaemonError } from "../protocol/errors";
import { channelFiles, type DaemonFiles } from "../protocol/paths";

/** The file itself (a link is not followed), or null when it is not there: nothing to judge. */
function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch {
    return null;
  }
}

function daemonUid(): number {
  return process.getuid?.() ?? 0;
}

/** Whether the user configured a group-writable file mode (`--file-mode 0660`): then the group may write. */
function sharedWithGroup(fileMode: number): boolean {
  return (fileMode & 0o020) !== 0;
}

/**
 * Why the daemon must not take commands from `file`, or null when it may. A command file
 * someone else can write is a way for them to run commands as the daemon's user.
 */
export function unsafeFileReason(file: string, fileMode: number): string | null {
  const stat = lstatOrNull(file);
  if (stat === null) return null;
  if (stat.isSymbolicLink()) return `${file} is a symbolic link; use the real path, a link could point the daemon anywhere`;
  if (!stat.isFile()) return `${file} is not a regular file`;
  const shared = sharedWithGroup(fileMode);
  if (stat.mode & 0o002) return `${file} is writable by every user (mode ${octal(stat.mode)}); run: chmod o-w ${file}`;
  if (stat.mode & 0o020 && !shared) return `${file} is writable by its group (mode ${octal(stat.mode)}); run: chmod g-w ${file}, or configure a group-writable file mode`;
  const uid = daemonUid();
  if (stat.uid !== uid && stat.uid !== 0 && !shared) return `${file} belongs to uid ${stat.uid}, not to the daemon's user (uid ${uid}); chown it or remove it`;
  if (stat.nlink > 1) return `${file} has ${stat.nlink} hard links, so it is also another file; remove it (the daemon creates a fresh one)`;
  return null;
}

/**
 * Why the daemon must not serve files in `dir`, or null. Whoever can write the directory can
 * replace the commands file: everyone (without the sticky bit), or another user who owns it.
 * A directory reached through a symbolic link is judged by what it points to.
 */
export function unsafeDirectoryReason(dir: string, fileMode = 0o600): string | null {
  const stat = fs.statSync(dir);
  if (!stat.isDirectory()) return `${dir} is not a directory`;
  if (stat.mode & 0o002 && !(stat.mode & 0o1000)) return `${dir} is writable by every user (mode ${octal(stat.mode)}); use a private directory or run: chmod o-w ${dir}`;
  const uid = daemonUid();
  if (stat.uid !== uid && stat.uid !== 0 && !sharedWithGroup(fileMode)) {
    return `${dir} belongs to uid ${stat.uid}, who could replace the commands file, not to the daemon's user (uid ${uid}); use a directory the daemon's user or root owns`;
  }
  return null;
}

/**
 * Why a channel file must not even be read, or null: a symbolic link (it could point at a
 * device or a FIFO and hang or flood the daemon), anything but a regular file, or a file far
 * larger than any record. Such a file was put there by a third party, never by a submitter
 * (they replace the file by rename), so the daemon replaces it with an empty file.
 */
export function unreadableFileReason(file: string, maxBytes: number): string | null {
  const stat = lstatOrNull(file);
  if (stat === null) return null;
  if (stat.isSymbolicLink()) return `${file} is a symbolic link`;
  if (!stat.isFile()) return `${file} is not a regular file`;
  if (stat.size > maxBytes) return `${file} is ${stat.size} bytes long, more than any record can be (${maxBytes})`;
  return null;
}

/** Why the daemon must not take a command from `commands` now: the file, then its directory. */
export function unsafeCommandsReason(commands: string, fileMode: number): string | null {
  const fileReason = unsafeFileReason(commands, fileMode);
  if (fileReason !== null) return fileReason;
  try {
    return unsafeDirectoryReason(path.dirname(commands), fileMode);
  } catch {
    return null;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** Refuses to start on files or directories that others could use to inject commands. */
export function checkFilesAreSafe(files: DaemonFiles, channels: number, fileMode: number, maxBytes: number): void {
  const reasons: string[] = [];
  for (const dir of files.directories) {
    const reason = unsafeDirectoryReason(dir, fileMode);
    if (reason !== null) reasons.push(reason);
  }
  for (let i = 0; i < channels; i++) {
    const channel = channelFiles(files, i);
    for (const file of [channel.commands, channel.results, channel.taken]) {
      const reason = unsafeFileReason(file, fileMode) ?? unreadableFileReason(file, maxBytes);
      if (reason !== null) reasons.push(reason);
    }
  }
  if (reasons.length > 0) throw new FileDaemonError("UNSAFE_FILES", `refusing to serve unsafe files: ${reasons.join("; ")}`);
}
