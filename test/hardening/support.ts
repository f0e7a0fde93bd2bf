// Shared pieces of the hardening tests: real daemon processes through the CLI, submitters in
// processes of their own (also as another user), and readers of /proc.
import { execFile, spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { useTempDir as sharedTempDir } from "../helpers/temp-dir";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { waitFor } from "../helpers/wait-for";
import { delay, readOrEmpty } from "../helpers/small";

export { waitFor };
export const REPO = path.resolve(__dirname, "..", "..", "..");
export const CLI = path.join(REPO, "bin", "file-daemon.js");
const CLIENT = path.join(REPO, "dist", "src", "client", "submit.js");
export const NOBODY = 65534;
export const IS_ROOT = process.getuid?.() === 0;

export { delay, readOrEmpty };

/** A private directory per test, owned by `nobody` when asked (see test/helpers/temp-dir.ts). */
export function useTempDir(options: { owner?: number } = {}): ReturnType<typeof sharedTempDir> {
  return sharedTempDir({ prefix: "file-daemon-hard-", ...options });
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `file-daemon ...args` as a real process; output is stdout and stderr together. */
export function spawnCli(args: string[], options: { stdio?: StdioOptions; uid?: number; gid?: number } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: options.stdio ?? ["ignore", "pipe", "pipe"], ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }) });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // 'close', not 'exit': at 'exit' the last of its output may still be unread in the pipes.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  return { child, pid: child.pid ?? 0, output: () => output, exited };
}

/** Runs `file-daemon ...args` to its end. */
export async function runCli(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A daemon started through the CLI in the foreground, once it serves its files. */
export async function startDaemon(commands: string, results: string, sleepTime: number, extra: string[] = []): Promise<CliProcess> {
  const daemon = spawnCli([results, commands, String(sleepTime), ...extra]);
  const files = daemonFiles(commands, results);
  await waitFor(`daemon pid ${daemon.pid} to serve ${commands}`, () => readLiveDaemon(files)?.pid === daemon.pid || daemon.child.exitCode !== null, 15_000);
  if (daemon.child.exitCode !== null) throw new Error(`the daemon exited with ${daemon.child.exitCode}: ${daemon.output()}`);
  return daemon;
}

export async function stopDaemon(daemon: CliProcess | undefined): Promise<void> {
  if (daemon === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill("SIGTERM");
  const timer = setTimeout(() => daemon.child.kill("SIGKILL"), 15_000);
  await daemon.exited;
  clearTimeout(timer);
}

export interface SubmitOutcome {
  readonly code?: number | null;
  readonly status?: string;
  readonly stdout?: string;
  readonly error?: string;
  readonly message?: string;
}

/**
 * A submitter in a process of its own (optionally as another user): submitCommand, then one
 * line of JSON with the result or the error. `child` lets a test kill it while it waits.
 */
export function submitInProcess(command: string, commands: string, results: string, sleepTime: number, options: { uid?: number; capture?: boolean } = {}): { child: ChildProcess; outcome: Promise<SubmitOutcome> } {
  const script = `require(${JSON.stringify(CLIENT)}).submitCommand(process.argv[1], process.argv[2], process.argv[3], Number(process.argv[4]), { capture: process.argv[5] === "1" }).then(
    (r) => console.log(JSON.stringify({ code: r.code, status: r.status, stdout: r.stdout === null ? undefined : r.stdout.toString() })),
    (e) => console.log(JSON.stringify({ error: e.code, message: e.message })))`;
  const child = spawn(process.execPath, ["-e", script, command, commands, results, String(sleepTime), options.capture ? "1" : "0"], {
    stdio: ["ignore", "pipe", "inherit"],
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  // 'close', not 'exit': the line of JSON may still be in the pipe when the process has exited.
  const outcome = new Promise<SubmitOutcome>((resolve) => child.once("close", (code, signal) => resolve(out.trim() === "" ? { error: `exited ${code ?? signal}` } : (JSON.parse(out.trim()) as SubmitOutcome))));
  return { child, outcome };
}

// --- /proc ---------------------------------------------------------------------------------

export interface ProcStat {
  readonly pid: number;
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  readonly session: number;
  readonly ttyNr: number;
}

/** Fields of /proc/PID/stat (counted after the last ')', as the command name may hold any). */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pid, state: fields[0] ?? "?", ppid: Number(fields[1]), pgrp: Number(fields[2]), session: Number(fields[3]), ttyNr: Number(fields[4]) };
}

/** A line of /proc/PID/status, e.g. "Umask" → "0077". */
export function procStatus(pid: number, key: string): string | null {
  const match = new RegExp(`^${key}:\\s*(.*)$`, "m").exec(readOrEmpty(`/proc/${pid}/status`));
  return match?.[1]?.trim() ?? null;
}

export interface OpenFd {
  readonly fd: number;
  readonly target: string;
  readonly cloexec: boolean;
}

/** The open descriptors of a process: what each points to, and whether it is close-on-exec. */
export function openFds(pid: number): OpenFd[] {
  const fds: OpenFd[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${name}`);
      const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${name}`, "utf8"))?.[1] ?? "0";
      fds.push({ fd: Number(name), target, cloexec: (parseInt(flags, 8) & 0o2000000) !== 0 });
    } catch {
      // Closed while we looked.
    }
  }
  return fds.sort((a, b) => a.fd - b.fd);
}

/** Children of `pid` in state Z (exited, not yet reaped). */
export function zombieChildren(pid: number): number[] {
  return childrenOf(pid, (state) => state === "Z");
}

/** Pids of the children of `pid` whose state passes `which` (all by default). */
export function childrenOf(pid: number, which: (state: string) => boolean = () => true): number[] {
  const children: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (stat !== null && stat.ppid === pid && which(stat.state)) children.push(stat.pid);
  }
  return children;
}

/** True once no process has `pid` (a zombie counts as gone: it runs nothing). */
export function isGonePid(pid: number): boolean {
  const stat = procStat(pid);
  return stat === null || stat.state === "Z";
}

// --- payloads --------------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32), so a failing fuzz case can be replayed from its seed. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces a hostile payload is made of: shell syntax of every kind, and text that looks harmless. */
const PIECES = [
  "'", '"', "`", "$(", ")", "${", "}", "$((1+1))", "$HOME", "$1", "$@", "$$", ";", "&&", "||", "|", "&", ">", "<", ">&2", "2>/dev/null", "<(id)",
  "\n", "\r", "\r\n", "\t", " ", "  ", "*", "?", "[a-z]", "{a,b}", "~", "~root", "\\", "\\\\", "\\n", "\\0", "\\x41", "\\'", "!", "!!", "!-1", "#", "=",
  "-", "-n", "-e", "--", "--help", "-rf", "%s", "%d", "%%", "%b", "'\\''", "$'\\n'", "touch PWNED", "rm -rf /", "id", "echo", ":", ".", "..", "/",
  "é", "ü", "ß", "✓", "😀", "𝄞", "中文", "עברית", "\u200b", "\u202e", "\u00a0", "\u2028", "\ufeff", "a", "b", "0", "9", "x y",
];

/** A random payload for append mode: any text without NUL or lone surrogates (both refused). */
export function hostilePayload(next: () => number): string {
  const parts = Math.floor(next() * 8);
  let text = "";
  for (let i = 0; i < parts; i++) {
    const roll = next();
    if (roll < 0.75) text += PIECES[Math.floor(next() * PIECES.length)] ?? "";
    else if (roll < 0.9) text += String.fromCodePoint(0x20 + Math.floor(next() * 0x5f));
    else {
      // Any code point but NUL and the surrogates.
      let cp = 1 + Math.floor(next() * 0x10fffe);
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800;
      text += String.fromCodePoint(cp);
    }
  }
  return text;
}
