import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { Outcome, ResultStatus } from "../protocol/result-record";
import { STREAM_FOLLOWER_WAIT_MS } from "../protocol/limits";
import type { OutputStream } from "./output-stream";
import { WARM_LINE_MAX, type WarmShells } from "./warm-shells";

export interface RunOptions {
  readonly shell: string;
  readonly captureLimit: number;
  /** After SIGTERM (timeout, kill, stop), SIGKILL follows this many ms later. */
  readonly killGraceMs: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** What one command asks for beyond its line (PROTOCOL.md §4, line 2). */
export interface CommandOptions {
  readonly timeoutMs: number;
  readonly capture: boolean;
  readonly cwd: string | null;
  readonly env: Readonly<Record<string, string>> | null;
  readonly stdin: Buffer | null;
  /** Where each line of output goes as it comes, when the command is followed. */
  readonly output: OutputStream | null;
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
function drain(stream: Readable | null | undefined, onData: (chunk: Buffer) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  stream.on("data", onData);
  return new Promise((resolve) => {
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
}

/** How often paused output looks whether its follower has caught up (ms). */
const FOLLOWER_POLL_MS = 20;

/**
 * Reads stdout and stderr into their captures and, for a followed command, into its stream
 * file; pauses both while the follower must catch up (the command then blocks on a full pipe,
 * as it would on a slow terminal). `heldAt` tells when output was last held back.
 */
class OutputReader {
  readonly stdout: BoundedCapture;
  readonly stderr: BoundedCapture;
  heldAt = 0;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly subprocess: ChildProcess,
    private readonly capture: boolean,
    captureLimit: number,
    private readonly output: OutputStream | null,
  ) {
    this.stdout = new BoundedCapture(captureLimit);
    this.stderr = new BoundedCapture(captureLimit);
  }

  /** Resolves once both pipes have closed. */
  read(): Promise<unknown> {
    return Promise.all([drain(this.subprocess.stdout, (chunk) => this.take("stdout", chunk)), drain(this.subprocess.stderr, (chunk) => this.take("stderr", chunk))]);
  }

  get paused(): boolean {
    return this.pollTimer !== undefined;
  }

  stop(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private take(name: "stdout" | "stderr", chunk: Buffer): void {
    if (this.capture) this[name].add(chunk);
    if (this.output === null || this.output.write(name, chunk) || this.paused) return;
    this.subprocess.stdout?.pause();
    this.subprocess.stderr?.pause();
    this.pollTimer = setInterval(() => {
      this.heldAt = performance.now();
      if (this.output?.mayGoOn() !== true) return;
      this.stop();
      this.subprocess.stdout?.resume();
      this.subprocess.stderr?.resume();
    }, FOLLOWER_POLL_MS);
  }
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
function spawnCold(command: string, options: RunOptions, wanted: CommandOptions): ChildProcess {
  if (execaModule === null) throw new Error("execa is not loaded yet");
  const output = wanted.capture || wanted.output !== null ? "pipe" : "ignore";
  const subprocess = execaModule.execa(options.shell, ["-c", "--", command], {
    detached: true,
    stdio: [wanted.stdin ?? "ignore", output, output],
    ...(wanted.cwd === null ? {} : { cwd: wanted.cwd }),
    ...(wanted.env === null ? {} : { env: wanted.env }),
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

/** A warm shell runs a command as the daemon's own shell would: in its directory and environment, stdin /dev/null. */
function suitsWarmShell(wanted: CommandOptions): boolean {
  return wanted.cwd === null && wanted.env === null && wanted.stdin === null;
}

/**
 * Starts `command` through the shell in a new session, so the shell leads its own process
 * group and a kill reaches every process it started (see PROTOCOL.md, "running"): in a warm
 * shell (warm-shells.ts: one ready, else one started now), else (a command longer than a warm
 * shell reads, or with its own directory, environment or input) `SHELL -c COMMAND` through execa.
 */
export async function runCommand(command: string, options: RunOptions, wanted: CommandOptions, warmShells: WarmShells): Promise<RunningCommand> {
  const line = `${wanted.capture || wanted.output !== null ? 1 : 0}${command}\n`;
  const warm = Buffer.byteLength(line) <= WARM_LINE_MAX && suitsWarmShell(wanted) ? (warmShells.take(options) ?? warmShells.startNow(options)) : null;
  if (warm === null) await loadExeca();
  const started = performance.now();
  let subprocess: ChildProcess;
  try {
    if (warm !== null) {
      subprocess = warm;
      warm.stdin?.end(line);
    } else {
      subprocess = spawnCold(command, options, wanted);
    }
  } catch (err) {
    // Invalid options throw at once; failures of the spawn itself arrive as an "error" event.
    const message = `the shell could not be started: ${err instanceof Error ? err.message : String(err)}`;
    const outcome: Outcome = { status: "failed", code: null, signal: null, message, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 };
    return { pgid: null, finished: Promise.resolve({ ...outcome, ...streamedCount(wanted.output) }), kill: () => undefined };
  }
  const pgid = subprocess.pid ?? null;
  const reader = new OutputReader(subprocess, wanted.capture, options.captureLimit, wanted.output);
  const { stdout, stderr } = reader;
  const streamsDone = reader.read();
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

  const timeoutTimer = wanted.timeoutMs > 0 ? setTimeout(() => kill("timeout", `timed out after ${wanted.timeoutMs / 1000} s`), wanted.timeoutMs) : undefined;

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
    // Background children may hold the pipes open after the shell exits: do not wait on them
    // for long (but output held back for a follower is read first).
    await Promise.race([streamsDone, quietFor(reader, OUTPUT_AFTER_EXIT_MS)]);
    reader.stop();
    subprocess.stdout?.destroy();
    subprocess.stderr?.destroy();
    const captured = {
      ...streamedCount(wanted.output),
      stdout: wanted.capture ? stdout.buffer : null,
      stderr: wanted.capture ? stderr.buffer : null,
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

/** After the shell exits, its pipes are read for this long (ms), counted from the end of any hold for a follower. */
const OUTPUT_AFTER_EXIT_MS = 200;

/** However long output is held for a follower after the shell exited (a background writer), the result is published after this (ms). */
const OUTPUT_AFTER_EXIT_MAX_MS = OUTPUT_AFTER_EXIT_MS + STREAM_FOLLOWER_WAIT_MS;

/** Resolves `ms` after now, or after the reader last held output back for its follower, whichever is later; at the latest after OUTPUT_AFTER_EXIT_MAX_MS. */
async function quietFor(reader: OutputReader, ms: number): Promise<void> {
  const since = performance.now();
  for (;;) {
    const now = performance.now();
    const idle = now - Math.max(since, reader.heldAt);
    if ((idle >= ms && !reader.paused) || now - since >= OUTPUT_AFTER_EXIT_MAX_MS) return;
    await new Promise((resolve) => setTimeout(resolve, Math.max(10, ms - idle)));
  }
}

/** `streamed` for the result of a followed command: the records written, once its output is done. */
function streamedCount(output: OutputStream | null): { streamed?: number } {
  return output === null ? {} : { streamed: output.end() };
}
