import fs from "node:fs";
import { decodeLease, encodeLease, MAX_LEASE_BYTES, type Lease } from "../supervision-lease";
import { writeFileAtomicSync } from "./atomic-write";
import { isPidAlive, processStartTime } from "./liveness";

/** Writes (atomically) a lease naming this process; mode 0644, like COMMANDS.daemon. */
export function writeOwnLease(file: string): Lease {
  const lease: Lease = { pid: process.pid, startTime: processStartTime(process.pid) };
  writeFileAtomicSync(file, encodeLease(lease), 0o644);
  return lease;
}

/** The lease in `file`; null when it is missing, unreadable or not a lease. */
export function readLease(file: string): Lease | null {
  let text: string;
  try {
    const fd = fs.openSync(file, "r");
    try {
      const buffer = Buffer.alloc(MAX_LEASE_BYTES);
      text = buffer.toString("utf8", 0, fs.readSync(fd, buffer, 0, MAX_LEASE_BYTES, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  return decodeLease(text);
}

/** Whether the lease names a process that still runs (same start time: a reused pid does not count). */
export function isLeaseLive(lease: Lease | null): boolean {
  if (lease === null) return false;
  if (lease.startTime === null) return isPidAlive(lease.pid);
  return processStartTime(lease.pid) === lease.startTime;
}
