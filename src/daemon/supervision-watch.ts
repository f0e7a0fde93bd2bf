import fs from "node:fs";
import type { Lease } from "../protocol/supervision-lease";
import { isLeaseLive, readLease } from "../protocol/io/supervision-lease";
import type { Logger } from "../shared/log";

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
  const check = () => {
    if (checking || done) return;
    checking = true;
    try {
      const lease = readLease(file);
      if (isLeaseLive(lease)) {
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
      if (performance.now() - lastSupervised >= graceMs) {
        done = true;
        clearInterval(timer);
        options.onExpired(`no supervisor for ${graceMs / 1000} s (${why})`);
      }
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(check, checkMs);
  timer.unref();
  check();
  return () => {
    done = true;
    clearInterval(timer);
  };
}
