import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { threadIds } from "./proc";

export interface ForkCount {
  /** clone/clone3 without CLONE_THREAD, fork and vfork made by the traced process's threads. */
  readonly processes: number;
  /** New threads (clone with CLONE_THREAD), for information. */
  readonly threads: number;
}

let available: boolean | undefined;

/** Whether `strace` runs here (the benchmark works without it and says "n/a"). */
export function straceAvailable(): boolean {
  available ??= spawnSync("strace", ["-V"], { stdio: "ignore" }).status === 0;
  return available;
}

/**
 * Counts the process-creating syscalls of `pid` while `run` runs:
 * `strace -f -e trace=clone,clone3,fork,vfork -p PID`. Children of the process are followed
 * too (that is what -f does), so only calls made by the process's own threads are counted.
 */
export async function countForks(pid: number, file: string, run: () => Promise<void>): Promise<ForkCount> {
  const tracer = spawn("strace", ["-f", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o", file, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  tracer.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => tracer.once("exit", () => resolve()));
  try {
    // strace attaches before it writes anything; with -qq it prints nothing, so wait until the
    // process shows a tracer in /proc/PID/status (TracerPid).
    const deadline = performance.now() + 10_000;
    while (!tracedBy(pid, tracer.pid)) {
      if (tracer.exitCode !== null || performance.now() > deadline) throw new Error(`strace did not attach: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const ownThreads = new Set(threadIds(pid));
    await run();
    for (const tid of threadIds(pid)) ownThreads.add(tid);
    tracer.kill("SIGINT");
    await exited;
    return parse(readFileSync(file, "utf8"), ownThreads);
  } finally {
    if (tracer.exitCode === null && tracer.signalCode === null) {
      tracer.kill("SIGKILL");
      await exited;
    }
    rmSync(file, { force: true });
  }
}

/** Whether `pid` is being traced by `tracer` (TracerPid in /proc/PID/status). */
export function tracedBy(pid: number, tracer: number | undefined): boolean {
  try {
    const match = /^TracerPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return match !== null && Number(match[1]) === tracer;
  } catch {
    return false;
  }
}

/** Lines look like `1234 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|…|SIGCHLD, …) = 5678`. */
function parse(text: string, ownThreads: ReadonlySet<number>): ForkCount {
  let processes = 0;
  let threads = 0;
  for (const line of text.split("\n")) {
    const match = /^(\d+)\s+(clone3?|v?fork)\((.*)$/.exec(line);
    if (match === null || !ownThreads.has(Number(match[1]))) continue;
    if (/CLONE_THREAD/.test(match[3] ?? "")) threads++;
    else processes++;
  }
  return { processes, threads };
}
