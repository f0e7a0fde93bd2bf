import fs from "node:fs";
import { isPid, parseJsonLine } from "./command-line";
import { isPidAlive, processStartTime } from "./liveness";
import type { DaemonFiles } from "./paths";

/** What a running daemon publishes in `<commands>.daemon` (see PROTOCOL.md). */
export interface DaemonInfo {
  readonly pid: number;
  /** /proc/PID/stat field 22 of the daemon, or null where /proc is missing. */
  readonly startTime: string | null;
  readonly channels: number;
  readonly sleepTime: number;
  readonly stale: number;
  readonly version: string;
  readonly startedAt: string;
}

export function encodeDaemonInfo(info: DaemonInfo): string {
  return `${JSON.stringify({ v: 1, ...info })}\n`;
}

export function decodeDaemonInfo(content: string): DaemonInfo | null {
  const meta = parseJsonLine(Buffer.from(content.split("\n")[0] ?? "", "utf8"));
  if (meta === null || meta.v !== 1 || !isPid(meta.pid)) return null;
  const channels = Number.isSafeInteger(meta.channels) && (meta.channels as number) >= 1 ? (meta.channels as number) : 1;
  return {
    pid: meta.pid,
    startTime: typeof meta.startTime === "string" ? meta.startTime : null,
    channels,
    sleepTime: typeof meta.sleepTime === "number" ? meta.sleepTime : 0.5,
    stale: typeof meta.stale === "number" ? meta.stale : 10_000,
    version: typeof meta.version === "string" ? meta.version : "unknown",
    startedAt: typeof meta.startedAt === "string" ? meta.startedAt : "",
  };
}

/**
 * The daemon serving these files, or null. Alive means: its info file names a process that
 * still runs (same start time, so a reused pid does not count) and its lock directory exists.
 */
export async function readLiveDaemon(files: DaemonFiles): Promise<DaemonInfo | null> {
  let info: DaemonInfo | null;
  try {
    info = decodeDaemonInfo(fs.readFileSync(files.info, "utf8"));
  } catch {
    return null;
  }
  if (info === null) return null;
  if (info.startTime !== null) {
    if ((await processStartTime(info.pid)) !== info.startTime) return null;
  } else if (!isPidAlive(info.pid)) {
    return null;
  }
  try {
    fs.statSync(files.daemonLock);
  } catch {
    return null;
  }
  return info;
}
