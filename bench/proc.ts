import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

/** Clock ticks per second for /proc/PID/stat utime and stime (getconf CLK_TCK; 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface CpuSample {
  /** utime + stime of every thread, in clock ticks (/proc/PID/stat fields 14 and 15). */
  readonly ticks: number;
  /** Time on CPU of every thread in ns (sum of /proc/PID/task/TID/schedstat), or null. */
  readonly ns: number | null;
  readonly at: number;
}

export function cpuSample(pid: number): CpuSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  let ns: number | null = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "latin1").split(" ")[0]);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  } catch {
    ns = null;
  }
  return { ticks, ns, at: performance.now() };
}

export interface CpuUse {
  /** Percent of one core, from schedstat (ns precision) when available, else from ticks. */
  readonly percent: number;
  /** Percent of one core from utime+stime alone (resolution: one tick per window). */
  readonly percentTicks: number;
  readonly ticks: number;
  readonly seconds: number;
}

export function cpuUse(before: CpuSample, after: CpuSample): CpuUse {
  const seconds = (after.at - before.at) / 1000;
  const ticks = after.ticks - before.ticks;
  const percentTicks = (100 * ticks) / CLK_TCK / seconds;
  const percent = before.ns !== null && after.ns !== null ? (100 * (after.ns - before.ns)) / 1e9 / seconds : percentTicks;
  return { percent, percentTicks, ticks, seconds };
}

/** A field of /proc/PID/status in bytes (VmHWM, VmRSS), or NaN. */
export function statusBytes(pid: number, field: "VmHWM" | "VmRSS"): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Thread ids of a process right now. */
export function threadIds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}
