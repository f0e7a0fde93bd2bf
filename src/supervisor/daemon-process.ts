import fs from "node:fs";
import { DAEMON_NODE_FLAGS } from "../shared/daemon-node-flags";
import path from "node:path";
import { packageRoot } from "../shared/package-root";
import { readLiveDaemon } from "../protocol/io/live-daemon";
import { isPidAlive, processStartTime } from "../protocol/io/liveness";
import type { DaemonFiles } from "../protocol/paths";
import { pause } from "../shared/pause";

/** The CLI that runs the daemon in the foreground. */
export const DAEMON_SCRIPT = path.join(packageRoot(), "bin", "file-daemon.js");

export interface LaunchOptions {
  readonly commands: string;
  readonly results: string;
  readonly sleepTime: number;
  readonly channels: number;
  /** The daemon's own log; its stderr (fatal start-up errors) is appended there too. */
  readonly logFile: string;
  /** On SIGTERM, seconds running commands may finish before they are killed. */
  readonly stopGraceSeconds: number;
  /**
   * `--supervised`: once COMMANDS.supervisor has named no live process for this many seconds,
   * the daemon stops. Omitted: it runs until it is stopped.
   */
  readonly supervisedGraceSeconds?: number;
}

export interface DaemonExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** "exit code 1", "killed by SIGKILL", "could not be started: …". */
  readonly description: string;
}

export interface LaunchedDaemon {
  readonly pid: number | null;
  readonly exited: Promise<DaemonExit>;
}

/**
 * Starts the daemon as a detached child (its own session), with no pipes to this process and
 * unref()-ed, so it can outlive the process that started it and never holds it open.
 */
export async function launchDaemon(options: LaunchOptions): Promise<LaunchedDaemon> {
  const { execa } = await import("execa");
  const args = [
    ...DAEMON_NODE_FLAGS,
    DAEMON_SCRIPT,
    options.results,
    options.commands,
    String(options.sleepTime),
    "--channels",
    String(options.channels),
    "--log",
    options.logFile,
    "--stop-grace",
    String(options.stopGraceSeconds),
    ...(options.supervisedGraceSeconds === undefined ? [] : ["--supervised", String(options.supervisedGraceSeconds)]),
  ];
  const logFd = fs.openSync(options.logFile, "a", 0o600);
  try {
    const subprocess = execa(process.execPath, args, {
      detached: true,
      cleanup: false,
      reject: false,
      buffer: false,
      stdin: "ignore",
      stdout: "ignore",
      // Inherited as is (no pipe through this process). execa accepts any descriptor at run
      // time (lib/stdio/handle.js) but its typings only list the numbers 1 to 9.
      stderr: logFd as 2,
    });
    const child = subprocess.nodeChildProcess;
    const exited = new Promise<DaemonExit>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal, description: signal === null ? `exit code ${code}` : `killed by ${signal}` }));
      child.once("error", (err) => resolve({ code: null, signal: null, description: `could not be started: ${err.message}` }));
    });
    // reject: false resolves on failure too; the handler only keeps rejections from surfacing.
    subprocess.then(
      () => undefined,
      () => undefined,
    );
    child.unref();
    return { pid: child.pid ?? null, exited };
  } finally {
    fs.closeSync(logFd);
  }
}

/** How long a stop waits for the daemon to exit, all in all (SIGKILL included). */
export const STOP_TIMEOUT_MS = 12_000;
/** How long, at the end of a stop's time, is kept for the process to vanish after SIGKILL. */
export const KILL_WAIT_MS = 1000;
const EXIT_POLL_MS = 50;

export interface TerminateOptions {
  /** All the time the stop may take, SIGKILL and its wait included (default STOP_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Aborted: kill at once (a deadline shared with other steps has come). */
  readonly killNow?: AbortSignal;
}

/**
 * SIGTERM (the daemon's clean stop), then SIGKILL once it has not exited KILL_WAIT_MS before
 * `timeoutMs` runs out (or `killNow` fires), then up to KILL_WAIT_MS for it to vanish. So it
 * resolves within `timeoutMs` (plus a poll): to how the daemon ended, or "unkillable".
 */
export async function terminateDaemon(pid: number, startTime: string | null, options: TerminateOptions = {}): Promise<"exited" | "killed" | "unkillable"> {
  const start = performance.now();
  const end = start + Math.max(0, options.timeoutMs ?? STOP_TIMEOUT_MS);
  const killAt = Math.max(start, end - KILL_WAIT_MS);
  sendSignal(pid, "SIGTERM");
  while (!isGone(pid, startTime)) {
    if (performance.now() >= killAt || options.killNow?.aborted) {
      sendSignal(pid, "SIGKILL");
      const killed = performance.now();
      while (!isGone(pid, startTime)) {
        if (performance.now() >= Math.max(end, killed + EXIT_POLL_MS)) return "unkillable";
        await pause(EXIT_POLL_MS / 5);
      }
      return "killed";
    }
    await pause(EXIT_POLL_MS, options.killNow);
  }
  return "exited";
}

/** Stops whichever daemon serves `files`; resolves to its pid, or null when none did. */
export async function stopLiveDaemon(files: DaemonFiles): Promise<number | null> {
  const live = readLiveDaemon(files);
  if (live === null) return null;
  await terminateDaemon(live.pid, live.startTime);
  return live.pid;
}

function sendSignal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/**
 * True once `pid` no longer names the process that started at `startTime`. A zombie counts as
 * gone: it has exited, and where no one reaps it (an init that does not) it would never vanish.
 */
export function isGone(pid: number, startTime: string | null): boolean {
  if (startTime === null ? !isPidAlive(pid) : processStartTime(pid) !== startTime) return true;
  return isZombie(pid);
}

/** Field 3 of /proc/PID/stat is Z (zombie) or X (dead). False where /proc cannot say. */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return false;
  }
}

/** The last `count` different lines of a log file, joined by " | " (empty when unreadable). */
export function logTail(file: string, count = 5): string {
  try {
    const size = fs.statSync(file).size;
    const length = Math.min(size, 4096);
    const buffer = Buffer.alloc(length);
    const fd = fs.openSync(file, "r");
    try {
      fs.readSync(fd, buffer, 0, length, size - length);
    } finally {
      fs.closeSync(fd);
    }
    const lines = buffer.toString("utf8").trim().split("\n");
    // A daemon that fails at every start writes the same line each time: say it once.
    const distinct = lines.filter((line, i) => !lines.slice(i + 1).includes(line));
    return distinct.slice(-count).join(" | ");
  } catch {
    return "";
  }
}
