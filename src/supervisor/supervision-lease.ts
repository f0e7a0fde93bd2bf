import fs from "node:fs";
import { isPidAlive, processStartTime } from "../protocol/io/liveness";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import type { Logger } from "../shared/log";

/**
 * The supervision lease, `COMMANDS.supervisor`: one line of JSON naming the process (Node-RED)
 * that supervises the daemon serving COMMANDS, `{"pid":4242,"startTime":"123456"}`. A managed
 * supervisor writes it when it starts or adopts a daemon, and rewrites it whenever it finds it
 * missing, unreadable or naming a process that is gone. A daemon started with
 * `--supervised GRACE` checks it about once a second and stops once no live process has been
 * named there for GRACE seconds. A missing or garbage lease names nobody: the grace applies.
 */
export interface Lease {
  readonly pid: number;
  /** /proc/PID/stat field 22, or null where /proc is missing (then only the pid is checked). */
  readonly startTime: string | null;
}

const MAX_LEASE_BYTES = 4096;

export function leasePath(commands: string): string {
  return `${commands}.supervisor`;
}

/** Writes (atomically) a lease naming this process; mode 0644, like COMMANDS.daemon. */
export async function writeOwnLease(file: string): Promise<Lease> {
  const lease: Lease = { pid: process.pid, startTime: processStartTime(process.pid) };
  writeFileAtomicSync(file, `${JSON.stringify(lease)}\n`, 0o644);
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
  let value: unknown;
  try {
    value = JSON.parse(text.split("\n")[0] ?? "");
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { pid, startTime } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(pid) || (pid as number) <= 0) return null;
  if (startTime !== null && typeof startTime !== "string") return null;
  return { pid: pid as number, startTime };
}

/** Whether the lease names a process that still runs (same start time: a reused pid does not count). */
export async function isLeaseLive(lease: Lease | null): Promise<boolean> {
  if (lease === null) return false;
  if (lease.startTime === null) return isPidAlive(lease.pid);
  return processStartTime(lease.pid) === lease.startTime;
}

/** Why `lease` names nobody, for the log. */
function describeVacancy(file: string, lease: Lease | null): string {
  if (lease !== null) return `the supervisor pid ${lease.pid} named in ${file} is gone`;
  return fs.existsSync(file) ? `${file} is not a supervision lease` : `${file} does not exist`;
}

export interface SupervisionWatchOptions {
  readonly file: string;
  readonly graceMs: number;
  readonly log: Logger;
  /** Called once, when nobody has supervised the daemon for `graceMs`. */
  readonly onExpired: (why: string) => void;
  /** How often the lease is read (default: 1 s, less for a short grace). */
  readonly checkMs?: number;
}

/**
 * Watches the lease for a daemon started with `--supervised`. The grace runs on the monotonic
 * clock from the last check that found a live supervisor (or from the start). Returns a stop
 * function.
 */
export function watchSupervision(options: SupervisionWatchOptions): () => void {
  const { file, graceMs, log } = options;
  const checkMs = options.checkMs ?? Math.min(1000, Math.max(100, graceMs / 2));
  let lastSupervised = performance.now();
  let supervisor: number | null = null;
  let vacantSince: string | null = null;
  let checking = false;
  let done = false;
  const check = async () => {
    if (checking || done) return;
    checking = true;
    try {
      const lease = readLease(file);
      if (await isLeaseLive(lease)) {
        lastSupervised = performance.now();
        if (supervisor !== lease?.pid) log.info(`supervised by pid ${lease?.pid} (${file})`);
        supervisor = lease?.pid ?? null;
        vacantSince = null;
        return;
      }
      const why = describeVacancy(file, lease);
      if (vacantSince !== why) {
        log.info(`not supervised: ${why}; stopping in ${Math.max(0, Math.round((lastSupervised + graceMs - performance.now()) / 100) / 10)} s unless a supervisor adopts this daemon`);
        vacantSince = why;
        supervisor = null;
      }
      if (performance.now() - lastSupervised >= graceMs && !done) {
        done = true;
        clearInterval(timer);
        options.onExpired(`no supervisor for ${graceMs / 1000} s (${why})`);
      }
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), checkMs);
  timer.unref();
  void check();
  return () => {
    done = true;
    clearInterval(timer);
  };
}
