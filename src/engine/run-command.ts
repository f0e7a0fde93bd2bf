import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import type { Readable } from "node:stream";
import type { ResultStatus } from "../protocol/result-record";

/** Captured output is cut after this many bytes per stream; the rest is read and dropped. */
export const DEFAULT_CAPTURE_LIMIT = 65_536;

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

export interface Outcome {
  readonly status: ResultStatus;
  readonly code: number | null;
  readonly signal: string | null;
  readonly message: string | null;
  readonly stdout: Buffer | null;
  readonly stderr: Buffer | null;
  readonly stdoutTruncated: boolean;
  readonly stderrTruncated: boolean;
  readonly durationMs: number;
}

export type KillReason = "killed" | "timeout";

export interface RunningCommand {
  /** The shell's pid, which is also the command's process group id. */
  readonly pgid: number | null;
  readonly finished: Promise<Outcome>;
  kill(reason: KillReason, message: string): void;
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
 * Starts `command` through the shell in a new session, so the shell leads its own process
 * group and a kill reaches every process it started (see PROTOCOL.md, "running").
 * `SHELL -c COMMAND` through node:child_process directly: execa's option handling cost about
 * a millisecond per command and ~8 MiB of daemon memory for nothing we use (npm run bench).
 */
export async function runCommand(command: string, options: RunOptions): Promise<RunningCommand> {
  const started = performance.now();
  const output = options.capture ? "pipe" : "ignore";
  const spawnOptions: SpawnOptions = {
    detached: true,
    stdio: ["ignore", output, output],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  };
  let subprocess: ChildProcess;
  try {
    subprocess = spawn(options.shell, ["-c", command], spawnOptions);
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

  function kill(reason: KillReason, message: string): void {
    if (killed.for !== null) return;
    killed.for = { reason, message };
    signalGroup("SIGTERM");
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
