import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { Outcome, ResultStatus } from "../protocol/result-record";
import { WARM_LINE_MAX, type WarmShells } from "./warm-shells";

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

let execaModule: typeof import("execa") | null = null;

/** execa is ESM-only: loaded once, when the first command needs a cold shell, so spawning stays synchronous. */
async function loadExeca(): Promise<typeof import("execa")> {
  execaModule ??= await import("execa");
  return execaModule;
}

/**
 * `SHELL -c [--] COMMAND` through execa, started now, in a new session (`detached`), so the
 * shell leads its own process group. `--` keeps a command that starts with "-" from being read
 * as options.
 */
function spawnCold(command: string, options: RunOptions): ChildProcess {
  if (execaModule === null) throw new Error("execa is not loaded yet");
  const output = options.capture ? "pipe" : "ignore";
  const subprocess = execaModule.execa(options.shell, ["-c", "--", command], {
    detached: true,
    stdio: ["ignore", output, output],
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

/**
 * Starts `command` through the shell in a new session, so the shell leads its own process
 * group and a kill reaches every process it started (see PROTOCOL.md, "running"): in a warm
 * shell (warm-shells.ts: one ready, else one started now), else (a command longer than a warm
 * shell reads, or warming turned off) `SHELL -c COMMAND` through execa.
 */
export async function runCommand(command: string, options: RunOptions, warmShells: WarmShells): Promise<RunningCommand> {
  const line = `${options.capture ? 1 : 0}${command}\n`;
  const warm = Buffer.byteLength(line) <= WARM_LINE_MAX ? (warmShells.take(options) ?? warmShells.startNow(options)) : null;
  if (warm === null) await loadExeca();
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
    const status: ResultStatus = killed.for?.reason ?? (exit.signal !== null ? "signaled" : "exited");
    return { status, code: exit.code, signal: exit.signal, message: killed.for?.message ?? null, ...captured };
  })();

  return { pgid, finished, kill };
}
