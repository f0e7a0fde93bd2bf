import { promises as fsp } from "node:fs";
import { FileDaemonError } from "../protocol/errors";
import { channelFiles, type DaemonFiles } from "../protocol/paths";

/**
 * Why the daemon must not take commands from `file`, or null when it may. A command file
 * someone else can write is a way for them to run commands as the daemon's user.
 */
export async function unsafeFileReason(file: string, fileMode: number): Promise<string | null> {
  let stat;
  try {
    stat = await fsp.lstat(file);
  } catch {
    return null;
  }
  if (stat.isSymbolicLink()) return `${file} is a symbolic link; use the real path, a link could point the daemon anywhere`;
  if (!stat.isFile()) return `${file} is not a regular file`;
  const sharedWithGroup = (fileMode & 0o020) !== 0;
  if (stat.mode & 0o002) return `${file} is writable by every user (mode ${octal(stat.mode)}); run: chmod o-w ${file}`;
  if (stat.mode & 0o020 && !sharedWithGroup) return `${file} is writable by its group (mode ${octal(stat.mode)}); run: chmod g-w ${file}, or configure a group-writable file mode`;
  const uid = process.getuid?.() ?? 0;
  if (stat.uid !== uid && stat.uid !== 0 && !sharedWithGroup) return `${file} belongs to uid ${stat.uid}, not to the daemon's user (uid ${uid}); chown it or remove it`;
  return null;
}

export async function unsafeDirectoryReason(dir: string): Promise<string | null> {
  const stat = await fsp.lstat(dir);
  if (stat.mode & 0o002 && !(stat.mode & 0o1000)) return `${dir} is writable by every user (mode ${octal(stat.mode)}); use a private directory or run: chmod o-w ${dir}`;
  return null;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** Refuses to start on files or directories that others could use to inject commands. */
export async function checkFilesAreSafe(files: DaemonFiles, channels: number, fileMode: number): Promise<void> {
  const reasons: string[] = [];
  for (const dir of files.directories) {
    const reason = await unsafeDirectoryReason(dir);
    if (reason !== null) reasons.push(reason);
  }
  for (let i = 0; i < channels; i++) {
    const channel = channelFiles(files, i);
    for (const file of [channel.commands, channel.results]) {
      const reason = await unsafeFileReason(file, fileMode);
      if (reason !== null) reasons.push(reason);
    }
  }
  if (reasons.length > 0) throw new FileDaemonError("UNSAFE_FILES", `refusing to serve unsafe files: ${reasons.join("; ")}`);
}
