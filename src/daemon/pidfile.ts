import fs from "node:fs";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import { FileDaemonError, fromFsError } from "../protocol/errors";
import { isPidAlive } from "../protocol/io/liveness";
import type { Logger } from "../shared/log";

/**
 * Writes the pidfile atomically. One that names a live file-daemon (another daemon given the
 * same --pidfile) is refused; one left by a dead daemon, or naming a pid that another program
 * has since been given, is stale and replaced.
 */
export function writePidfile(pidfile: string, log: Logger): void {
  let previous = "";
  try {
    previous = fs.readFileSync(pidfile, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw fromFsError(err, pidfile, "cannot read the pidfile");
  }
  const pid = /^\d{1,10}$/.test(previous) ? Number(previous) : null;
  if (pid !== null && pid !== process.pid && pid > 0) {
    const state = pidState(pid);
    if (state === "file-daemon") {
      throw new FileDaemonError("ALREADY_RUNNING", `the pidfile ${pidfile} names file-daemon pid ${pid}, which is running; stop it, or give this daemon another --pidfile`);
    }
    log.info(`the pidfile ${pidfile} named pid ${pid}, which ${state === "dead" ? "is not running" : "is another program now"}: stale, replaced`);
  } else if (previous !== "" && pid === null) {
    log.info(`the pidfile ${pidfile} held ${JSON.stringify(previous.slice(0, 40))}, not a pid: replaced`);
  }
  try {
    writeFileAtomicSync(pidfile, `${process.pid}\n`, 0o644);
  } catch (err) {
    throw fromFsError(err, pidfile, "cannot write the pidfile");
  }
}

/** Removes the pidfile if it still names this process. */
export function removePidfile(pidfile: string): void {
  try {
    if (fs.readFileSync(pidfile, "utf8").trim() === String(process.pid)) fs.rmSync(pidfile, { force: true });
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}

/** What runs as `pid` now: a file-daemon, another program (the pid was reused), or nothing. */
function pidState(pid: number): "file-daemon" | "other" | "dead" {
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    // No /proc (or the process just ended): only ask whether it exists.
    return fs.existsSync("/proc/self") || !isPidAlive(pid) ? "dead" : "file-daemon";
  }
  return cmdline.split("\0").some((arg) => /(^|\/)file-daemon(\.js)?$/.test(arg)) ? "file-daemon" : "other";
}
