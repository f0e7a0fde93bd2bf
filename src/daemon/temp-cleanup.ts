import fs from "node:fs";
import path from "node:path";
import { isPidAlive } from "../protocol/io/liveness";

/**
 * The temporary file of an atomic write of X is `X.<pid>.<hex>.tmp` (PROTOCOL.md, files table):
 * the writer's pid, then 8 lowercase hex digits (4 random bytes, as both writers in this repo
 * make them: src/protocol/atomic-write.ts and python/file_daemon.py). Nothing else matches.
 */
const TEMP_SUFFIX = /^\.([1-9][0-9]{0,9})\.[0-9a-f]{8}\.tmp$/;

/**
 * Removes the temporary files that writers which died mid-write left next to `channelFiles`:
 * for each path X, its siblings named exactly `X.<pid>.<hex>.tmp` that are regular files (by
 * lstat: a symbolic link is neither followed nor removed), whose writer's pid names no process
 * here (kill(pid, 0) fails with ESRCH) and whose mtime is more than `olderThanMs` old. Returns
 * the paths it removed; anything it cannot look at or remove is left alone (and logged).
 *
 * The age is the guard for what a pid cannot tell: a writer in another pid namespace sharing the
 * directory, or one whose pid was reused. A write takes microseconds, so any age of seconds
 * means the writer is long gone. Synchronous, like the protocol's other file operations.
 */
export function removeDeadWritersTemps(channelFiles: readonly string[], olderThanMs: number, log?: (line: string) => void): string[] {
  const removed: string[] = [];
  const byDirectory = new Map<string, Set<string>>();
  for (const file of channelFiles) {
    const resolved = path.resolve(file);
    const dir = path.dirname(resolved);
    const bases = byDirectory.get(dir) ?? new Set<string>();
    bases.add(path.basename(resolved));
    byDirectory.set(dir, bases);
  }
  const now = Date.now();
  for (const [dir, bases] of byDirectory) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") log?.(`cannot list ${dir} for stale temporary files: ${(err as Error).message}`);
      continue;
    }
    for (const name of names) {
      const pid = tempWriterPid(name, bases);
      if (pid === null) continue;
      const file = path.join(dir, name);
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(file);
      } catch {
        continue; // Renamed or removed since the listing.
      }
      if (!stat.isFile()) continue;
      const ageMs = now - stat.mtimeMs;
      if (!(ageMs > olderThanMs) || isPidAlive(pid)) continue;
      try {
        fs.unlinkSync(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") log?.(`cannot remove stale temporary file ${file}: ${(err as Error).message}`);
        continue;
      }
      removed.push(file);
      log?.(`removed ${file}: a temporary file its writer (pid ${pid}, gone) left ${Math.round(ageMs / 1000)} s ago`);
    }
  }
  return removed;
}

/** The writer's pid when `name` is `<base>.<pid>.<hex>.tmp` for one of `bases`, else null. */
function tempWriterPid(name: string, bases: ReadonlySet<string>): number | null {
  if (!name.endsWith(".tmp")) return null;
  // The pid and hex hold no dot, so the base is what precedes the third dot from the end.
  const parts = name.split(".");
  if (parts.length < 4) return null;
  const base = parts.slice(0, -3).join(".");
  if (!bases.has(base)) return null;
  const match = TEMP_SUFFIX.exec(name.slice(base.length));
  return match === null ? null : Number(match[1]);
}
