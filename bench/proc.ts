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

/** The memory fields of /proc/PID/status the benchmark reads. */
export type StatusField = "VmHWM" | "VmRSS" | "RssAnon" | "RssFile";

/** A field of /proc/PID/status in bytes, or NaN. */
export function statusBytes(pid: number, field: StatusField): number {
  return memoryOf(pid)[field];
}

/**
 * A process's memory now, from /proc/PID/status (bytes; NaN when unreadable). VmHWM: peak
 * resident set; VmRSS: resident now, = RssAnon + RssFile + RssShmem. RssAnon is the process's
 * own (private) memory; RssFile is mapped files, the node binary's pages among them, which every
 * node process on the machine shares (Node-RED's own node included).
 */
export type Memory = Readonly<Record<StatusField, number>>;

export function memoryOf(pid: number): Memory {
  let text = "";
  try {
    text = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    // Gone: every field NaN.
  }
  const field = (name: StatusField) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  };
  return { VmHWM: field("VmHWM"), VmRSS: field("VmRSS"), RssAnon: field("RssAnon"), RssFile: field("RssFile") };
}

/** How many file descriptors a process has open now (/proc/PID/fd), or NaN. */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

export interface Sample {
  /** ms since the sampling started. */
  readonly at: number;
  readonly memory: Memory;
  readonly fds: number;
}

/** Samples a process's memory and open fds every `everyMs` until stopped (once at the start and once at the stop too). */
export function startSampling(pid: number, everyMs: number): { stop(): Sample[] } {
  const samples: Sample[] = [];
  const started = performance.now();
  const take = () => samples.push({ at: performance.now() - started, memory: memoryOf(pid), fds: fdCount(pid) });
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/** Thread ids of a process right now. */
export function threadIds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** The file system a path lives on, from /proc/mounts (longest matching mount point). */
export function fileSystemOf(dir: string): string {
  try {
    let best = { point: "", type: "?" };
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [, point, type] = line.split(" ");
      if (point === undefined || type === undefined) continue;
      if ((dir === point || dir.startsWith(point.endsWith("/") ? point : `${point}/`)) && point.length > best.point.length) best = { point, type };
    }
    return best.type;
  } catch {
    return "?";
  }
}
