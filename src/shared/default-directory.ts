import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FileDaemonError, fromFsError } from "../protocol/errors";

/**
 * The directory a `file-daemon` config node keeps its files in when it is given no paths: a
 * private directory, on a RAM disk where there is one (faster, and no wear on a Pi's SD card).
 *
 * In this order:
 * 1. `configured`: the administrator's `fileDaemonDefaultDirectory` (settings.js), when set;
 * 2. `$XDG_RUNTIME_DIR/file-daemon`, when XDG_RUNTIME_DIR is an absolute path to a directory
 *    that this user owns and nobody else may write (what the XDG spec promises: `/run/user/<uid>`,
 *    tmpfs, made by systemd-logind for a login session; a system service such as
 *    nodered.service usually has none);
 * 3. `/dev/shm/file-daemon-<uid>`, when /dev/shm is a directory (tmpfs on every Linux);
 * 4. otherwise `os.tmpdir()/file-daemon-<uid>` (usually /tmp): no RAM disk was found, so the
 *    files may be on disk, but the directory is private all the same.
 *
 * Only resolves the path: nothing is created or changed (the editor shows it as the default).
 * Throws BAD_OPTION when `configured` is set but not an absolute path.
 */
export function resolveDefaultDirectory(options: DefaultDirectoryOptions = {}): string {
  const { configured } = options;
  const unset = configured === undefined || configured === null || (typeof configured === "string" && configured.trim() === "");
  if (!unset) {
    if (typeof configured !== "string" || !path.isAbsolute(configured.trim()) || configured.includes("\0")) {
      throw new FileDaemonError("BAD_OPTION", `fileDaemonDefaultDirectory in settings.js must be an absolute path, got ${JSON.stringify(configured)}`);
    }
    return path.resolve(configured.trim());
  }
  const uid = options.uid ?? ownUid();
  const runtimeDir = (options.env ?? process.env).XDG_RUNTIME_DIR;
  if (runtimeDir !== undefined && path.isAbsolute(runtimeDir) && isPrivateDirectory(runtimeDir, uid)) return path.join(path.resolve(runtimeDir), "file-daemon");
  const shm = options.shm ?? "/dev/shm";
  if (isDirectory(shm)) return path.join(shm, `file-daemon-${uid}`);
  return path.join(options.tmp ?? os.tmpdir(), `file-daemon-${uid}`);
}

export interface DefaultDirectoryOptions {
  /** The administrator's directory (settings.js `fileDaemonDefaultDirectory`); unset or "" for none. */
  readonly configured?: unknown;
  /** Where XDG_RUNTIME_DIR is read (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The shared RAM disk (default /dev/shm). */
  readonly shm?: string;
  /** The fallback without a RAM disk (default os.tmpdir()). */
  readonly tmp?: string;
  /** Whose directory it is (default: this process's uid). */
  readonly uid?: number;
}

/**
 * Makes `dir` (the default directory) ready for the daemon's files and returns it: creates it
 * with mode 0700 when it does not exist (its parent must: only the last component is made),
 * and otherwise checks that it is this user's own private directory. Throws FileDaemonError,
 * naming the path and the fix, when it cannot be made (NO_DIRECTORY, PERMISSION, IO) or must
 * not be used (UNSAFE_FILES).
 *
 * Why these checks: /dev/shm and /tmp are shared by every local user (mode 1777), and
 * `/dev/shm/file-daemon-<uid>` is a name anyone can predict. Another user can create it before
 * Node-RED does: as their own directory (or one every user may write), so that they read our
 * commands, answer them with results of their own, or swap the commands file for one that runs
 * their commands as our user; or as a symbolic link that points our files somewhere else. So a
 * directory found there is used only when it is a real directory (lstat: a link is not
 * followed), owned by this user, and writable by nobody else. The sticky bit of /dev/shm then
 * keeps others from renaming or removing it. Anything else is refused, never repaired: chmod
 * or chown on someone else's directory would not make what they may have put in it ours.
 */
export function ensureDefaultDirectory(dir: string, uid = ownUid()): string {
  const parent = path.dirname(dir);
  checkParent(parent, dir, uid);
  let created = false;
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    created = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new FileDaemonError("NO_DIRECTORY", `cannot create the default directory ${dir}: ${parent} does not exist; create it (mkdir -p -m 700 ${dir}), or give the config node its own paths`, { cause: err });
    if (code !== "EEXIST") throw fromFsError(err, dir, "creating the default directory");
  }
  // The umask may have taken bits off: the directory is exactly 0700.
  if (created) fs.chmodSync(dir, 0o700);
  const reason = unsafeReason(dir, uid);
  if (reason !== null) throw new FileDaemonError("UNSAFE_FILES", `refusing the default directory: ${reason}. Nothing was written there and no daemon uses it`);
  return dir;
}

/** Why the existing `dir` must not hold the daemon's files, or null when it is ours and private. */
function unsafeReason(dir: string, uid: number): string | null {
  const stat = fs.lstatSync(dir);
  const remedy = `check who made it and remove it (rm -r ${dir}: it is made again, private, on the next start), or set fileDaemonDefaultDirectory in settings.js, or give the config node its own paths`;
  if (stat.isSymbolicLink()) return `${dir} is a symbolic link (to ${linkTarget(dir)}), not a directory of its own: a link could lead the daemon's files anywhere; ${remedy}`;
  if (!stat.isDirectory()) return `${dir} is not a directory; ${remedy}`;
  if (stat.uid !== uid) return `${dir} belongs to ${userName(stat.uid)}, not to ${userName(uid)} who runs Node-RED: in a directory every user shares, anyone can create it first to read or answer the commands; ${remedy}`;
  if ((stat.mode & 0o022) !== 0) return `${dir} is writable by ${(stat.mode & 0o002) !== 0 ? "every user" : "its group"} (mode ${octal(stat.mode)}): others could replace the commands file; run chmod 700 ${dir}`;
  return null;
}

/**
 * The directory the default one is made in: whoever may write it could rename ours away and
 * put theirs in its place, unless it is sticky (as /dev/shm and /tmp are) or theirs is ours.
 */
function checkParent(parent: string, dir: string, uid: number): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(parent);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new FileDaemonError("NO_DIRECTORY", `cannot create the default directory ${dir}: ${parent} does not exist; create it (mkdir -p -m 700 ${dir}), or give the config node its own paths`, { cause: err });
    throw fromFsError(err, parent, "looking at the directory of the default directory");
  }
  if (!stat.isDirectory()) throw new FileDaemonError("NO_DIRECTORY", `cannot create the default directory ${dir}: ${parent} is not a directory`);
  const othersWrite = (stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0;
  if (othersWrite || (stat.uid !== uid && stat.uid !== 0)) {
    const who = othersWrite ? `writable by others without the sticky bit (mode ${octal(stat.mode)})` : `owned by ${userName(stat.uid)}`;
    throw new FileDaemonError("UNSAFE_FILES", `refusing the default directory ${dir}: ${parent} is ${who}, so someone else could replace ${dir}; set fileDaemonDefaultDirectory in settings.js to a private directory, or give the config node its own paths`);
  }
}

function isPrivateDirectory(dir: string, uid: number): boolean {
  try {
    const stat = fs.statSync(dir);
    return stat.isDirectory() && stat.uid === uid && (stat.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function linkTarget(link: string): string {
  try {
    return fs.readlinkSync(link);
  } catch {
    return "?";
  }
}

/** "uid 65534 (nobody)", or "uid 65534" when no such user is known here. */
function userName(uid: number): string {
  try {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name !== undefined && id === String(uid)) return `uid ${uid} (${name})`;
    }
  } catch {
    // No /etc/passwd to read: the number alone.
  }
  return `uid ${uid}`;
}

function ownUid(): number {
  return process.getuid?.() ?? 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}
