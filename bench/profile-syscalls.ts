import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tracedBy } from "./strace";

export interface SyscallCount {
  readonly calls: number;
  readonly errors: number;
  /** Per syscall, most calls first. */
  readonly top: readonly { readonly name: string; readonly calls: number }[];
}

/**
 * Counts the syscalls of each process's main thread (its event loop: every synchronous file
 * operation, inotify read and fork happens there) while `run` runs: `strace -c -p PID`, no -f,
 * so neither the daemon's shells nor V8's and libuv's helper threads are counted. strace slows
 * the traced threads: only the counts are meant.
 */
export async function countSyscalls(pids: readonly number[], fileBase: string, run: () => Promise<void>): Promise<SyscallCount[]> {
  const tracers = pids.map((pid, i) => {
    const file = `${fileBase}.${i}`;
    const tracer = spawn("strace", ["-c", "-o", file, "-p", String(pid)], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    tracer.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => tracer.once("close", () => resolve()));
    return { pid, file, tracer, exited, stderr: () => stderr };
  });
  try {
    const deadline = performance.now() + 10_000;
    for (const { pid, tracer, stderr } of tracers) {
      while (!tracedBy(pid, tracer.pid)) {
        if (tracer.exitCode !== null || performance.now() > deadline) throw new Error(`strace did not attach to ${pid}: ${stderr().trim()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    await run();
    for (const { tracer } of tracers) tracer.kill("SIGINT");
    await Promise.all(tracers.map((t) => t.exited));
    return tracers.map(({ file }) => parse(readFileSync(file, "utf8")));
  } finally {
    for (const { tracer, exited, file } of tracers) {
      if (tracer.exitCode === null && tracer.signalCode === null) {
        tracer.kill("SIGKILL");
        await exited;
      }
      rmSync(file, { force: true });
    }
  }
}

/** strace -c's table: `% time  seconds  usecs/call  calls  [errors]  syscall`, then a `total` line. */
function parse(text: string): SyscallCount {
  const top: { name: string; calls: number }[] = [];
  let calls = 0;
  let errors = 0;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !/^\d+\.\d+$/.test(fields[0] ?? "")) continue;
    const name = fields.at(-1) ?? "";
    const count = Number(fields[3]);
    const failed = fields.length >= 6 ? Number(fields[4]) : 0;
    if (name === "total") {
      calls = count;
      errors = failed;
    } else {
      top.push({ name, calls: count });
    }
  }
  top.sort((a, b) => b.calls - a.calls);
  return { calls, errors, top };
}
