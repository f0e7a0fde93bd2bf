import { readFileSync, readlinkSync } from "node:fs";

/**
 * Field 22 of /proc/PID/stat: the process's start time, which tells a reused pid apart. Null
 * when there is no such process, or it has ended and only waits to be reaped (state Z or X):
 * a zombie holds no lock and will never write again, so it must not pass for a live daemon.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

let ownNamespace: string | null | undefined;

/** This process's pid namespace (e.g. `pid:[4026531836]`); pids only compare within one. */
export function pidNamespace(): string | null {
  if (ownNamespace === undefined) {
    try {
      ownNamespace = readlinkSync("/proc/self/ns/pid");
    } catch {
      ownNamespace = null;
    }
  }
  return ownNamespace;
}

/**
 * Whether the process that wrote `owner` is known to be gone. Unknown (another pid
 * namespace, no pid) counts as alive: a wrong "gone" could make a result vanish.
 */
export function isOwnerGone(owner: { pid: number | null; pidns: string | null }): boolean {
  if (owner.pid === null || owner.pidns === null || owner.pidns !== pidNamespace()) return false;
  return !isPidAlive(owner.pid);
}
