import type { ChildProcess, SpawnOptions } from "node:child_process";
import type { Readable } from "node:stream";
import type { Outcome, ResultStatus } from "../protocol/result-record";

export interface RunOptions {
  readonly shell: string;
  readonly timeoutMs: number;
  readonly capture: boolean;
  readonly captureLimit: number;
  /** After SIGTERM (timeout, kill, stop), SIGKILL follows this many ms later. */
  readonly killGraceMs: number;
  readonly uid?: number;
  readonly gid?: number;
}

export type KillReason = "killed" | "timeout";

export interface RunningCommand {
  /** The shell's pid, which is also the command's process group id. */
  readonly pgid: number | null;
  readonly finished: Promise<Outcome>;
  /** Sends `signal` (default SIGTERM) to the whole process group, then SIGKILL after the kill grace. */
  kill(reason: KillReason, message: string, signal?: NodeJS.Signals): void;
}

class BoundedCapture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.size += part.length;
  }

  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Drains a stream into `capture` and resolves when it ends (or soon after the shell exits). */
function drain(stream: Readable | null | undefined, capture: BoundedCapture): Promise<void> {
  if (!stream) return Promise.resolve();
  stream.on("data", (chunk: Buffer) => capture.add(chunk));
  return new Promise((resolve) => {
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
}

/**
 * A warm shell: `SHELL -c WARM_SCRIPT` started before a command arrives, so that forking the
 * daemon (the largest cost of a short command: libuv forks the whole ~60 MB process on the
 * main thread) happens while nothing waits. It reads one line from stdin: a capture flag
 * (`1` or `0`) and the command, then behaves as `SHELL -c COMMAND` would: stdin is
 * /dev/null, stdout and stderr go to the daemon's pipes or to /dev/null, `$$` is the shell,
 * which leads its own session and process group, and its exit status is the command's. The
 * variable holding the line is unset before the command runs. At EOF (the daemon died or
 * stopped) it exits without running anything. One visible difference: a syntax error in the
 * command is reported as `sh: 1: eval: Syntax error: ...` (exit status 2 either way).
 */
const WARM_SCRIPT = 'IFS= read -r __file_daemon_line || exit 0; exec </dev/null; case $__file_daemon_line in 1*) ;; *) exec >/dev/null 2>&1;; esac; eval "unset __file_daemon_line; ${__file_daemon_line#?}"';

/** Longer commands start cold: a shell reads a line from a pipe one byte (one syscall) at a time. */
const WARM_LINE_MAX = 4096;

/** After a command ends, the next warm shell is started this many ms later (see `rewarm`). */
const REWARM_DELAY_MS = 3;

/** A warm shell that dies unused this many times (broken shell, limits) turns warming off for good. */
const MAX_IDLE_DEATHS = 3;

type Refable = { ref?: () => void; unref?: () => void };

interface Spare {
  readonly child: ChildProcess;
  readonly onIdleExit: () => void;
}

/** A daemon's warm shells: at most one idle per shell and user; taken by the next command, then replaced. */
export class WarmShells {
  private readonly spares = new Map<string, Spare>();
  private readonly idleDeaths = new Map<string, number>();

  /** An idle warm shell for these options, or null (none ready, or warming is off). */
  take(options: RunOptions): ChildProcess | null {
    const key = keyOf(options);
    const spare = this.spares.get(key);
    if (spare === undefined) return null;
    this.spares.delete(key);
    spare.child.off("exit", spare.onIdleExit);
    spare.child.off("error", spare.onIdleExit);
    if (!isRunning(spare.child)) return null;
    setRef(spare.child, true);
    return spare.child;
  }

  /**
   * Starts the next warm shell now, unless one is ready. The daemon's event loop stands still
   * while it forks (~2 ms here for a 60 MB daemon), so this runs a few ms after a command
   * ended: after its result was published, while the submitter collects it and before it can
   * place the next one (measured: 1 ms often forked before the publish, 3 ms did not).
   */
  rewarm(options: RunOptions): void {
    const key = keyOf(options);
    if (this.spares.has(key) || (this.idleDeaths.get(key) ?? 0) >= MAX_IDLE_DEATHS) return;
    this.start(key, options);
  }

  /** Ends every idle warm shell (they would end by themselves when this process exits). */
  close(): void {
    for (const { child, onIdleExit } of this.spares.values()) {
      child.off("exit", onIdleExit);
      child.stdin?.end();
    }
    this.spares.clear();
  }

  private start(key: string, options: RunOptions): void {
    let child: ChildProcess;
    try {
      child = spawnShell(options, WARM_SCRIPT, ["pipe", "pipe", "pipe"]);
    } catch {
      this.idleDeaths.set(key, MAX_IDLE_DEATHS);
      return;
    }
    // A write to a shell that died, or a failed spawn: the command's outcome says what happened.
    child.stdin?.on("error", () => undefined);
    const onIdleExit = () => {
      if (this.spares.get(key)?.child !== child) return;
      this.spares.delete(key);
      this.idleDeaths.set(key, (this.idleDeaths.get(key) ?? 0) + 1);
    };
    child.once("exit", onIdleExit);
    child.once("error", onIdleExit);
    // An idle warm shell must not keep the daemon process alive.
    setRef(child, false);
    this.spares.set(key, { child, onIdleExit });
  }
}

function keyOf(options: RunOptions): string {
  return `${options.shell}\0${options.uid ?? ""}\0${options.gid ?? ""}`;
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

let execaModule: typeof import("execa") | null = null;

/** execa is ESM-only: loaded once, before the first command, so spawning stays synchronous. */
async function loadExeca(): Promise<typeof import("execa")> {
  execaModule ??= await import("execa");
  return execaModule;
}

/**
 * `SHELL -c [--] SCRIPT` through execa, in a new session (`detached`), so the shell leads its
 * own process group. `--` keeps a command that starts with "-" from being read as options.
 */
function spawnShell(options: RunOptions, script: string, stdio: SpawnOptions["stdio"]): ChildProcess {
  if (execaModule === null) throw new Error("execa is not loaded yet");
  const subprocess = execaModule.execa(options.shell, ["-c", "--", script], {
    detached: true,
    stdio: stdio as ["pipe" | "ignore", "pipe" | "ignore", "pipe" | "ignore"],
    reject: false,
    cleanup: false,
    buffer: false,
    encoding: "buffer",
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  // reject: false, but a failed spawn must never surface as an unhandled rejection.
  subprocess.catch(() => undefined);
  return subprocess.nodeChildProcess;
}

/** `SHELL -c COMMAND` in a new process, started now. */
function spawnCold(command: string, options: RunOptions): ChildProcess {
  const output = options.capture ? "pipe" : "ignore";
  return spawnShell(options, command, ["ignore", output, output]);
}

/**
 * Starts `command` through the shell in a new session, so the shell leads its own process
 * group and a kill reaches every process it started (see PROTOCOL.md, "running"): in a warm
 * shell when one is ready, else `SHELL -c COMMAND`. Both are started with execa; the warm
 * shell keeps execa's cost (about a millisecond per spawn here) off a command's round trip.
 */
export async function runCommand(command: string, options: RunOptions, warmShells: WarmShells): Promise<RunningCommand> {
  await loadExeca();
  const line = `${options.capture ? 1 : 0}${command}\n`;
  const warm = Buffer.byteLength(line) <= WARM_LINE_MAX ? warmShells.take(options) : null;
  const started = performance.now();
  let subprocess: ChildProcess;
  try {
    if (warm !== null) {
      subprocess = warm;
      warm.stdin?.end(line);
    } else {
      subprocess = spawnCold(command, options);
    }
  } catch (err) {
    // Invalid options throw at once; failures of the spawn itself arrive as an "error" event.
    const message = `the shell could not be started: ${err instanceof Error ? err.message : String(err)}`;
    const outcome: Outcome = { status: "failed", code: null, signal: null, message, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 };
    return { pgid: null, finished: Promise.resolve(outcome), kill: () => undefined };
  }
  const pgid = subprocess.pid ?? null;
  const stdout = new BoundedCapture(options.captureLimit);
  const stderr = new BoundedCapture(options.captureLimit);
  const streamsDone = Promise.all([drain(subprocess.stdout, stdout), drain(subprocess.stderr, stderr)]);
  const killed: { for: { reason: KillReason; message: string } | null } = { for: null };
  let forceTimer: NodeJS.Timeout | undefined;

  const signalGroup = (signal: NodeJS.Signals) => {
    if (pgid === null) return;
    try {
      process.kill(-pgid, signal);
    } catch {
      // The group is already gone.
    }
  };

  const exited = new Promise<{ code: number | null; signal: string | null; error: string | null }>((resolve) => {
    subprocess.once("exit", (code, signal) => resolve({ code, signal, error: null }));
    subprocess.once("error", (err) => resolve({ code: null, signal: null, error: err.message }));
  });

  const timeoutTimer = options.timeoutMs > 0 ? setTimeout(() => kill("timeout", `timed out after ${options.timeoutMs / 1000} s`), options.timeoutMs) : undefined;

  function kill(reason: KillReason, message: string, signal: NodeJS.Signals = "SIGTERM"): void {
    if (killed.for !== null) return;
    killed.for = { reason, message };
    signalGroup(signal);
    forceTimer = setTimeout(() => signalGroup("SIGKILL"), options.killGraceMs);
  }

  const finished = (async (): Promise<Outcome> => {
    const exit = await exited;
    clearTimeout(timeoutTimer);
    clearTimeout(forceTimer);
    // Background children may hold the pipes open after the shell exits: do not wait on them.
    await Promise.race([streamsDone, new Promise((resolve) => setTimeout(resolve, 200))]);
    subprocess.stdout?.destroy();
    subprocess.stderr?.destroy();
    const captured = {
      stdout: options.capture ? stdout.buffer : null,
      stderr: options.capture ? stderr.buffer : null,
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      durationMs: Math.round(performance.now() - started),
    };
    if (exit.error !== null) {
      return { status: "failed", code: null, signal: null, message: `the shell could not be started: ${exit.error}`, ...captured };
    }
    // The caller publishes the result on its next turn of the event loop; warm the next shell after that.
    setTimeout(() => warmShells.rewarm(options), REWARM_DELAY_MS).unref();
    const status: ResultStatus = killed.for?.reason ?? (exit.signal !== null ? "signaled" : "exited");
    return { status, code: exit.code, signal: exit.signal, message: killed.for?.message ?? null, ...captured };
  })();

  return { pgid, finished, kill };
}
