import { fork, spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { DAEMON_NODE_FLAGS } from "../src/shared/daemon-node-flags";
import { readLiveDaemon } from "../src/protocol/io/live-daemon";
import { daemonFiles } from "../src/protocol/paths";
import type { Reply, Request } from "./ipc";

export const REPO = path.resolve(__dirname, "..", "..");
export const CLI = path.join(REPO, "bin", "file-daemon.js");

/** Every process the benchmark started, so that all of them are stopped at the end. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess, output: { text: string }): Promise<number | null> {
  children.add(child);
  child.stdout?.on("data", (chunk: Buffer) => (output.text = (output.text + chunk.toString()).slice(-20_000)));
  child.stderr?.on("data", (chunk: Buffer) => (output.text = (output.text + chunk.toString()).slice(-20_000)));
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Stops a child with SIGTERM (SIGKILL after `graceMs`) and waits for it. */
export async function stopChild(child: ChildProcess, exited: Promise<unknown>, graceMs = 5000): Promise<void> {
  if (!alive(child)) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Drivers started by runDriver: stopped with SIGTERM, so that they stop their own children. */
const drivers = new Set<ChildProcess>();

/** Last resort (error, Ctrl-C): every child still running gets SIGKILL (a driver, SIGTERM). */
export function killAllChildren(): void {
  for (const child of children) if (alive(child)) child.kill(drivers.has(child) ? "SIGTERM" : "SIGKILL");
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface DaemonChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly commands: string;
  readonly results: string;
  readonly channels: number;
  readonly sleepTime: number;
  stop(): Promise<void>;
}

/** `node bin/file-daemon.js RESULTS COMMANDS SLEEP [...extra]`, a separate process as in real use. */
export async function startDaemon(dir: string, name: string, sleepTime: number, channels: number, extra: string[] = []): Promise<DaemonChild> {
  const commands = path.join(dir, `${name}.commands`);
  const results = path.join(dir, `${name}.results`);
  const args = [...DAEMON_NODE_FLAGS, CLI, results, commands, String(sleepTime), ...(channels === 1 ? [] : ["--channels", String(channels)]), ...extra];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const output = { text: "" };
  const exited = track(child, output);
  const files = daemonFiles(commands, results);
  await waitUntil(`daemon ${name} (output: ${output.text})`, () => !alive(child) || readLiveDaemon(files)?.pid === child.pid, 15_000);
  if (!alive(child)) throw new Error(`daemon ${name} exited: ${output.text}`);
  return { child, pid: child.pid as number, commands, results, channels, sleepTime, stop: () => stopChild(child, exited, 15_000) };
}

export interface PlainChild {
  readonly child: ChildProcess;
  readonly pid: number;
  stop(): Promise<void>;
}

/** A bare idle node, the baseline for the daemon's memory and idle CPU. */
export async function startBareNode(): Promise<PlainChild> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  const exited = track(child, { text: "" });
  await new Promise((resolve) => setTimeout(resolve, 300));
  return { child, pid: child.pid as number, stop: () => stopChild(child, exited) };
}

/** The Node-RED process (nodered-worker.js), driven over IPC. */
export class NodeRedWorker {
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private readonly output = { text: "" };
  private readonly exited: Promise<number | null>;
  readonly ready: Promise<void>;
  readonly child: ChildProcess;

  /** `execArgv`: Node flags for the worker (--max-old-space-size, --expose-gc). It runs on this process's Node. */
  constructor(execArgv: readonly string[] = []) {
    this.child = fork(path.join(__dirname, "nodered-worker.js"), [], { stdio: ["ignore", "pipe", "pipe", "ipc"], execArgv: [...execArgv] });
    this.exited = track(this.child, this.output);
    this.ready = new Promise((resolve, reject) => {
      this.pending.set(0, { resolve: () => resolve(), reject });
    });
    this.child.on("message", (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new Error(`Node-RED worker: ${reply.error}`));
    });
    void this.exited.then((code) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`the Node-RED worker exited (${code}): ${this.output.text}`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  request<T>(request: Request): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, request });
    });
  }

  async stop(): Promise<void> {
    if (!alive(this.child)) return;
    try {
      await Promise.race([this.request({ op: "unload" }), new Promise((resolve) => setTimeout(resolve, 5000))]);
    } catch {
      // Stopping anyway.
    }
    this.child.disconnect();
    await stopChild(this.child, this.exited);
  }
}

/** One `sh -c true` straight from this process with child_process.spawn; ms until it exited. */
export function spawnTrue(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", "true"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve(performance.now() - started));
  });
}

/**
 * This benchmark's driver (run.js) again, on the Node at `nodePath`, so that everything it
 * starts (daemons, Node-RED workers, the bare node) runs on that Node. Its stderr goes to ours;
 * resolves to its exit code and its stdout.
 */
export async function runDriver(nodePath: string, args: readonly string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(nodePath, [path.join(__dirname, "run.js"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  drivers.add(child);
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  // 'close', not 'exit': at 'exit' the end of its output may still be unread in the pipe.
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  children.delete(child);
  drivers.delete(child);
  return { code, stdout };
}
