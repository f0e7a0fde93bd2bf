import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_FILE_MODE } from "../limits";

// The protocol's file operations are synchronous on purpose, and named so: each is a few
// microseconds on a local file, while a libuv thread-pool round trip per step made a command's
// round trip several times slower (see the benchmark), and a hold under a lock must not yield
// to timers (a lock refresh in the middle would look like a lost lock).

/** Where this process's temp-name counter starts: random, so a restarted pid does not meet its old names. */
let tempCounter = randomBytes(4).readUInt32BE(0);

/**
 * The temporary name of an atomic write of `file` (PROTOCOL.md §1): `X.<pid>.<hex>.tmp`. A
 * counter, not fresh random bytes per write (a getrandom call each): the name only has to
 * differ from this process's other temp files, and `wx` refuses any that exists.
 */
export function tempNameFor(file: string): string {
  tempCounter = (tempCounter + 1) >>> 0;
  return `${file}.${process.pid}.${tempCounter.toString(16).padStart(8, "0")}.tmp`;
}

/**
 * Replaces `file` with `data` in one step (temp file + rename), so a reader never sees a
 * half-written file even when two writers race (see PROTOCOL.md, "two holders at once"). The
 * temp file is created exclusively: a file planted under that name is never written through.
 */
export function writeFileAtomicSync(file: string, data: string | Buffer, mode = DEFAULT_FILE_MODE): void {
  fs.closeSync(replaceWithOpenFileSync(file, data, mode));
}

/**
 * writeFileAtomicSync, keeping the new file open for writing (its offset after `data`): the
 * writer goes on appending to the file it made, never to whatever a path names later.
 */
export function replaceWithOpenFileSync(file: string, data: string | Buffer, mode = DEFAULT_FILE_MODE): number {
  const temp = tempNameFor(file);
  const fd = fs.openSync(temp, "wx", mode);
  try {
    fs.writeFileSync(fd, data);
    // The umask may have narrowed or (for 0644 files) the mode must be exact.
    fs.fchmodSync(fd, mode);
    giveToDirectoryOwner(fd, temp);
    fs.renameSync(temp, file);
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
}

/**
 * A party running as root that writes into a directory another user owns gives the file to
 * that user (PROTOCOL.md §1): a daemon started as root that dropped to that user (`--user`)
 * could not read a root-owned 0600 command, nor a kill request.
 */
function giveToDirectoryOwner(fd: number, temp: string): void {
  if (process.getuid?.() !== 0) return;
  const dir = fs.statSync(path.dirname(temp));
  if (dir.uid !== 0) fs.fchownSync(fd, dir.uid, dir.gid);
}

/** Reads a file; a missing file reads as empty (the protocol treats both as "nothing there"). */
export function readFileOrEmptySync(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw err;
  }
}
