import { DEFAULT_CAPTURE_LIMIT, DEFAULT_FILE_MODE, effectiveStale, resultTtlMs } from "../protocol/limits";
import { silentLogger, type Logger } from "../shared/log";
import { channelCount, sleepTimeMs } from "../shared/settings";

/** What a daemon may be told; every optional field has its default in DAEMON_DEFAULTS. */
export interface DaemonOptions {
  readonly commands: string;
  readonly results: string;
  /** Seconds between looks at the files when no change event arrives (the seed's sleep_time). */
  readonly sleepTime: number;
  /** Commands that may run at once, each on its own pair of files. */
  readonly channels?: number;
  /** Lock staleness in ms (PROTOCOL.md §2). */
  readonly stale?: number;
  readonly shell?: string;
  /** Bytes of stdout and of stderr kept per command when asked. */
  readonly captureLimit?: number;
  /** SIGTERM → SIGKILL delay when killing a command's group (ms). */
  readonly killGraceMs?: number;
  /** On stop, how long running commands may finish before they are killed (ms). */
  readonly stopGraceMs?: number;
  /** How long a result nobody collects is kept (ms); by default PROTOCOL.md §7's rule. */
  readonly resultTtlMs?: number;
  /** Use change events; false polls every sleep_time only. */
  readonly watch?: boolean;
  readonly fileMode?: number;
  /** A file of allowlist patterns (src/shared/allowlist.ts): every command no pattern matches is refused. */
  readonly allow?: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly pidfile?: string;
  readonly log?: Logger;
}

/** The defaults, in one place: the daemon, its CLI and its --help use these. */
export const DAEMON_DEFAULTS = {
  sleepTime: 0.5,
  channels: 1,
  shell: "/bin/sh",
  captureLimit: DEFAULT_CAPTURE_LIMIT,
  killGraceMs: 2000,
  stopGraceMs: 10_000,
  watch: true,
  fileMode: DEFAULT_FILE_MODE,
} as const;

/** Every option checked and given its value, once. */
export interface ResolvedDaemonOptions extends Required<Omit<DaemonOptions, "uid" | "gid" | "pidfile" | "allow">> {
  readonly allow: string | undefined;
  readonly sleepMs: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly pidfile: string | undefined;
}

export function resolveDaemonOptions(options: DaemonOptions): ResolvedDaemonOptions {
  const sleepMs = sleepTimeMs(options.sleepTime);
  return {
    commands: options.commands,
    results: options.results,
    sleepTime: sleepMs / 1000,
    sleepMs,
    channels: channelCount(options.channels ?? DAEMON_DEFAULTS.channels),
    stale: effectiveStale(options.stale),
    shell: options.shell ?? DAEMON_DEFAULTS.shell,
    captureLimit: options.captureLimit ?? DAEMON_DEFAULTS.captureLimit,
    killGraceMs: options.killGraceMs ?? DAEMON_DEFAULTS.killGraceMs,
    stopGraceMs: options.stopGraceMs ?? DAEMON_DEFAULTS.stopGraceMs,
    resultTtlMs: options.resultTtlMs ?? resultTtlMs(sleepMs),
    watch: options.watch ?? DAEMON_DEFAULTS.watch,
    fileMode: options.fileMode ?? DAEMON_DEFAULTS.fileMode,
    uid: options.uid,
    gid: options.gid,
    pidfile: options.pidfile,
    allow: options.allow,
    log: options.log ?? silentLogger,
  };
}
