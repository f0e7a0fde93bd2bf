import { spawn, type ChildProcess } from "node:child_process";

/** What a warm shell must match to run a command: the shell and the user it runs as. */
export interface ShellIdentity {
  readonly shell: string;
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * A warm shell: `SHELL -c WARM_SCRIPT` started before a command arrives, so that forking the
 * daemon (the largest cost of a short command: libuv forks the whole process on the main
 * thread, 1.2–2 ms here) happens while no command waits for it. It reads one line from stdin:
 * a capture flag (`1` or `0`) and the command, then behaves as `SHELL -c COMMAND` would: stdin
 * is /dev/null, stdout and stderr go to the daemon's pipes or to /dev/null, `$$` is the shell,
 * which leads its own session and process group, and its exit status is the command's. The
 * variable holding the line is unset before the command runs. At EOF (the daemon died or
 * stopped) it exits without running anything. One visible difference: a syntax error in the
 * command is reported as `sh: 1: eval: Syntax error: ...` (exit status 2 either way).
 */
const WARM_SCRIPT = 'IFS= read -r __file_daemon_line || exit 0; exec </dev/null; case $__file_daemon_line in 1*) ;; *) exec >/dev/null 2>&1;; esac; eval "unset __file_daemon_line; ${__file_daemon_line#?}"';

/** Longer commands start cold: a shell reads a line from a pipe one byte (one syscall) at a time. */
export const WARM_LINE_MAX = 4096;

/** A warm shell that dies unused this many times (broken shell, limits) turns warming off for good. */
const MAX_IDLE_DEATHS = 3;

type Refable = { ref?: () => void; unref?: () => void };

interface Spare {
  readonly child: ChildProcess;
  readonly onIdleExit: () => void;
}

/**
 * A daemon's warm shells, per shell and user: taken by the next command, replaced once its
 * result is published (the fork then overlaps the submitter collecting it; started while the
 * command ran, it delayed a short command's end by the whole fork, 2 ms here). One is kept
 * ready; a command that found none raises that to at most `maxSpares` (the daemon's channel
 * count), so a burst on every channel finds one each.
 *
 * Spawned with node:child_process, not execa: execa's option handling costs about a
 * millisecond of the daemon's event loop per spawn, and its modules 7 MiB of the daemon's
 * private memory, for a shell whose stdio and exit this class handles itself.
 */
export class WarmShells {
  private readonly spares = new Map<string, Spare[]>();
  private readonly wanted = new Map<string, number>();
  private readonly idleDeaths = new Map<string, number>();

  constructor(private readonly maxSpares: number) {}

  /** An idle warm shell for `identity`, or null (none ready, or warming is off). */
  take(identity: ShellIdentity): ChildProcess | null {
    const key = keyOf(identity);
    const ready = this.spares.get(key) ?? [];
    for (let spare = ready.shift(); spare !== undefined; spare = ready.shift()) {
      spare.child.off("exit", spare.onIdleExit);
      spare.child.off("error", spare.onIdleExit);
      if (!isRunning(spare.child)) continue;
      setRef(spare.child, true);
      return spare.child;
    }
    this.wanted.set(key, Math.min(this.maxSpares, (this.wanted.get(key) ?? 1) + 1));
    return null;
  }

  /**
   * A shell started now for a command that found none ready (the daemon was busy when it
   * would have refilled): the same fork a refill costs, without execa's. Null when warming is
   * off for `identity` (its shells kept dying) or the spawn threw.
   */
  startNow(identity: ShellIdentity): ChildProcess | null {
    if ((this.idleDeaths.get(keyOf(identity)) ?? 0) >= MAX_IDLE_DEATHS) return null;
    try {
      return spawnWarmShell(identity);
    } catch {
      return null;
    }
  }

  /** Starts one more warm shell for `identity` when fewer than wanted are ready. */
  refill(identity: ShellIdentity): void {
    const key = keyOf(identity);
    const ready = this.spares.get(key)?.length ?? 0;
    if (ready >= (this.wanted.get(key) ?? 1) || (this.idleDeaths.get(key) ?? 0) >= MAX_IDLE_DEATHS) return;
    this.start(key, identity);
  }

  /** Ends every idle warm shell (they would end by themselves when this process exits). */
  close(): void {
    for (const ready of this.spares.values()) {
      for (const { child, onIdleExit } of ready) {
        child.off("exit", onIdleExit);
        child.stdin?.end();
      }
    }
    this.spares.clear();
  }

  private start(key: string, identity: ShellIdentity): void {
    let child: ChildProcess;
    try {
      child = spawnWarmShell(identity);
    } catch {
      this.idleDeaths.set(key, MAX_IDLE_DEATHS);
      return;
    }
    const ready = this.spares.get(key) ?? [];
    this.spares.set(key, ready);
    const onIdleExit = () => {
      const index = ready.findIndex((spare) => spare.child === child);
      if (index < 0) return;
      ready.splice(index, 1);
      this.idleDeaths.set(key, (this.idleDeaths.get(key) ?? 0) + 1);
    };
    child.once("exit", onIdleExit);
    child.once("error", onIdleExit);
    // An idle warm shell must not keep the daemon process alive.
    setRef(child, false);
    ready.push({ child, onIdleExit });
  }
}

/** `SHELL -c -- WARM_SCRIPT` in a session of its own (it leads its process group). */
function spawnWarmShell(identity: ShellIdentity): ChildProcess {
  const child = spawn(identity.shell, ["-c", "--", WARM_SCRIPT], {
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
    ...(identity.uid === undefined ? {} : { uid: identity.uid }),
    ...(identity.gid === undefined ? {} : { gid: identity.gid }),
  });
  // A write to a shell that died, or a failed spawn: the command's outcome says what happened
  // (a spare skipped by take() before its spawn error arrived must not crash the daemon either).
  child.stdin.on("error", () => undefined);
  child.on("error", () => undefined);
  return child;
}

function keyOf(identity: ShellIdentity): string {
  return `${identity.shell}\0${identity.uid ?? ""}\0${identity.gid ?? ""}`;
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function setRef(child: ChildProcess, ref: boolean): void {
  for (const handle of [child, child.stdin, child.stdout, child.stderr] as (Refable | null)[]) {
    if (ref) handle?.ref?.();
    else handle?.unref?.();
  }
}
