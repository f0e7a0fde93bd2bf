// Shared pieces of the Python client tests: temp dirs, bounded polling, a Python runner that
// calls python/file_daemon.py and prints one JSON line per call, and file-protocol helpers
// (a fake live daemon, lock directories) for the cases a real daemon cannot be made to show.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Daemon, type DaemonOptions } from "../../src/daemon/daemon";
import { useTempDir as sharedTempDir } from "../helpers/temp-dir";
import { delay, readOrEmpty } from "../helpers/small";
import { waitFor } from "../helpers/wait-for";

export const REPO = path.resolve(__dirname, "..", "..", "..");
export const PYTHON_DIR = path.join(REPO, "python");
export const PYTHON = process.env.PYTHON ?? "python3";
export const CLI = path.join(REPO, "bin", "file-daemon.js");
/** Seconds between the Python client's looks at the files. */
export const SLEEP = 0.05;

/** A private directory per test (see test/helpers/temp-dir.ts). */
export function useTempDir(): ReturnType<typeof sharedTempDir> {
  return sharedTempDir({ prefix: "file-daemon-py-" });
}

export { waitFor };

/**
 * The set-up most Python suites share: a private directory per test, an in-process daemon
 * started on demand on its two files, and afterwards every Python child killed, the daemon stopped.
 */
export function usePythonSuite(): {
  readonly tmp: ReturnType<typeof useTempDir>;
  readonly files: () => { commands: string; results: string };
  readonly start: (options?: Omit<DaemonOptions, "commands" | "results" | "sleepTime">) => Promise<Daemon>;
} {
  let daemon: Daemon | undefined;
  afterEach(async () => {
    killPythons();
    await daemon?.stop();
    daemon = undefined;
  });
  const tmp = useTempDir();
  const files = () => ({ commands: tmp.file("commands"), results: tmp.file("results") });
  return {
    tmp,
    files,
    start: async (options = {}) => {
      daemon = await Daemon.start({ ...files(), sleepTime: SLEEP, ...options });
      return daemon;
    },
  };
}

export { delay, readOrEmpty };

// --- the Python side ------------------------------------------------------------------------

/** One call of submit_command: `command` as JSON, or `expr` as a Python expression. */
export interface PyCall {
  readonly command?: string;
  readonly expr?: string;
  /** Keyword arguments (JSON values); they may override commands, results and sleep_time. */
  readonly kwargs?: Record<string, unknown>;
  /** Keyword arguments as a Python dict expression, for values JSON cannot hold (nan, bytes). */
  readonly kwargsExpr?: string;
  readonly marker?: string;
}

export interface PyResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly status: string;
  readonly message: string | null;
  /** base64, as the runner prints bytes */
  readonly stdout: string | null;
  readonly stderr: string | null;
  readonly stdout_truncated: boolean;
  readonly stderr_truncated: boolean;
  readonly duration_ms: number;
  readonly id: string;
  readonly channel: number;
  readonly return_code: number;
}

export interface PyOutcome {
  readonly ok: boolean;
  readonly marker: string | null;
  readonly result: PyResult | null;
  readonly code?: string;
  readonly message?: string;
  readonly interrupted?: boolean;
  readonly elapsed: number;
}

const RUNNER = String.raw`
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
import file_daemon as fd

spec = json.loads(sys.argv[2])

def b64(data):
    return None if data is None else base64.b64encode(data).decode()

def result(r):
    if r is None:
        return None
    fields = ("code", "signal", "status", "message", "stdout_truncated", "stderr_truncated", "duration_ms", "id", "channel")
    out = {name: getattr(r, name) for name in fields}
    out.update(stdout=b64(r.stdout), stderr=b64(r.stderr), return_code=r.return_code)
    return out

for call in spec["calls"]:
    command = eval(call["expr"]) if "expr" in call else call["command"]
    kwargs = dict(commands=spec["commands"], results=spec["results"], sleep_time=spec["sleep"])
    kwargs.update(call.get("kwargs", {}))
    if "kwargsExpr" in call:
        kwargs.update(eval(call["kwargsExpr"]))
    out = {"marker": call.get("marker")}
    began = time.monotonic()
    try:
        out.update(ok=True, result=result(fd.submit_command(command, **kwargs)))
    except fd.FileDaemonError as err:
        out.update(ok=False, code=err.code, message=str(err), result=result(err.result))
    except KeyboardInterrupt:
        out.update(ok=False, interrupted=True, result=None)
    out["elapsed"] = time.monotonic() - began
    print(json.dumps(out), flush=True)
`;

export interface PyProcess {
  readonly child: ChildProcess;
  /** Resolves when the process exits, with every line it printed. */
  readonly done: Promise<{ outcomes: PyOutcome[]; exitCode: number | null; stderr: string }>;
}

const livePythons = new Set<ChildProcess>();

/** SIGKILLs Python processes a failed test left behind (call it in afterEach). */
export function killPythons(): void {
  for (const child of livePythons) child.kill("SIGKILL");
  livePythons.clear();
}

/** Starts one Python process that runs `calls` one after the other against the given files. */
export function startPython(commands: string, results: string, calls: readonly PyCall[], sleep = SLEEP): PyProcess {
  const spec = JSON.stringify({ commands, results, sleep, calls });
  const child = spawn(PYTHON, ["-c", RUNNER, PYTHON_DIR, spec], { stdio: ["ignore", "pipe", "pipe"] });
  livePythons.add(child);
  child.once("exit", () => livePythons.delete(child));
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ outcomes: PyOutcome[]; exitCode: number | null; stderr: string }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode) => {
      const outcomes = stdout
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as PyOutcome);
      resolve({ outcomes, exitCode, stderr });
    });
  });
  return { child, done };
}

/** Runs `calls` in a Python process and returns their outcomes; fails if Python itself crashed. */
export async function runPython(commands: string, results: string, calls: readonly PyCall[], sleep = SLEEP): Promise<PyOutcome[]> {
  const { outcomes, exitCode, stderr } = await startPython(commands, results, calls, sleep).done;
  if (exitCode !== 0 || outcomes.length !== calls.length) {
    throw new Error(`python exited with ${exitCode} after ${outcomes.length}/${calls.length} calls: ${stderr}`);
  }
  return outcomes;
}

/** The single outcome of one call. */
export async function runOne(commands: string, results: string, call: PyCall): Promise<PyOutcome> {
  const [outcome] = await runPython(commands, results, [call]);
  return outcome as PyOutcome;
}

export function bytesOf(base64: string | null | undefined): Buffer | null {
  return base64 === null || base64 === undefined ? null : Buffer.from(base64, "base64");
}

// --- the files, as the protocol lays them out -----------------------------------------------

/** Field 22 of /proc/PID/stat, as a daemon publishes it. */
export function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] as string;
}

/** What a fake daemon publishes; `extra` overrides or adds fields of COMMANDS.daemon. */
export interface FakeDaemonOptions {
  readonly channels?: number;
  readonly pid?: number;
  readonly startTime?: string | null;
  readonly extra?: Record<string, unknown>;
}

/**
 * Makes `commands` look served by a live daemon that never takes anything: the info file names
 * this (mocha) process, the files it serves and the daemon lock exists. Lets a test hold a command in the pending state.
 */
export function fakeDaemon(commands: string, results: string, options: FakeDaemonOptions = {}): void {
  const pid = options.pid ?? process.pid;
  const startTime = options.startTime === undefined ? startTimeOf(process.pid) : options.startTime;
  const info = { v: 1, commands: path.resolve(commands), results: path.resolve(results), pid, startTime, channels: options.channels ?? 1, sleepTime: SLEEP, stale: 10_000, version: "fake", startedAt: new Date().toISOString(), ...options.extra };
  writeFileSync(`${commands}.daemon`, `${JSON.stringify(info)}\n`);
  mkdirSync(`${commands}.daemon.lock`, { recursive: true });
  // As a daemon does at start-up: an empty taken trace (design C) where there is none.
  if (!existsSync(`${commands}.taken`)) writeFileSync(`${commands}.taken`, `trace ${FAKE_EPOCH}\n`);
}

/** The epoch of the taken trace a fake daemon creates. */
export const FAKE_EPOCH = "00000000fa4ed43e";

export function stopFakeDaemon(commands: string): void {
  rmSync(`${commands}.daemon`, { force: true });
  rmSync(`${commands}.daemon.lock`, { recursive: true, force: true });
}

/** The line 2 metadata of a pending command, or null. */
export function pendingMeta(commands: string): { id: string; pid: number; pidns: string | null; timeout: number; capture: boolean } | null {
  const [line1, line2] = readOrEmpty(commands).split("\n");
  if (line1 === undefined || line1.trim() === "" || line2 === undefined || !line2.startsWith("{")) return null;
  return JSON.parse(line2) as { id: string; pid: number; pidns: string | null; timeout: number; capture: boolean };
}

/** The line 2 metadata of the results file, or null. */
export function resultsMeta(results: string): Record<string, unknown> | null {
  const line2 = readOrEmpty(results).split("\n")[1];
  return line2 !== undefined && line2.startsWith("{") ? (JSON.parse(line2) as Record<string, unknown>) : null;
}

/** Replaces `file` with `content` atomically, as a third party speaking the protocol would. */
export function replaceFile(file: string, content: string): void {
  const temp = `${file}.${process.pid}.test.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  renameSync(temp, file);
}

/** Kills a process group left behind by a test (a command whose daemon was SIGKILLed). */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone
  }
}

export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Runs `fn` holding both locks of a channel (mkdir, commands first), as any protocol party would. */
export async function withLocks<T>(commands: string, results: string, fn: () => T): Promise<T> {
  await waitFor(`the locks of ${commands}`, () => {
    if (!tryMkdir(`${commands}.lock`)) return false;
    if (tryMkdir(`${results}.lock`)) return true;
    rmdirSync(`${commands}.lock`);
    return false;
  });
  try {
    return fn();
  } finally {
    rmdirSync(`${results}.lock`);
    rmdirSync(`${commands}.lock`);
  }
}

function tryMkdir(dir: string): boolean {
  try {
    mkdirSync(dir, 0o700);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

/** The pid of a process that has exited (and so names nobody, until pids wrap around). */
export async function deadPid(): Promise<number> {
  const child = spawn("true", [], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid as number;
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  output(): string;
}

/** Starts `file-daemon RESULTS COMMANDS SLEEP` as a child process (so a test can SIGKILL it) and waits until it serves. */
export async function startDaemonProcess(commands: string, results: string, extra: string[] = []): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI, results, commands, String(SLEEP), ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitFor(`the daemon to serve ${commands}`, () => child.exitCode !== null || readOrEmpty(`${commands}.daemon`).includes(`"pid":${child.pid},`));
  if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}: ${output}`);
  return { child, exited, output: () => output };
}

export async function stopDaemonProcess(daemon: DaemonProcess | undefined): Promise<void> {
  if (daemon === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill("SIGTERM");
  await daemon.exited;
}

/** Command `i` of submitter `name`: logs its marker, prints it, exits with a code derived from both. */
export function markedCommand(name: string, i: number, log: string): { marker: string; expected: number; command: string } {
  const marker = `${name}-${i}`;
  const expected = expectedCode(marker);
  return { marker, expected, command: `echo ${marker} >> '${log}'; printf %s ${marker}; exit ${expected}` };
}

export function expectedCode(marker: string): number {
  let hash = 7;
  for (const char of marker) hash = (hash * 31 + char.charCodeAt(0)) % 256;
  return hash;
}
