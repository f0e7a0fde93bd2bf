import { isPid, parseJsonLine } from "./command-line";
import { FileDaemonError } from "./errors";
import { DEFAULT_FILE_MODE } from "./limits";
import { PROTOCOL_VERSION } from "./version";
import type { DaemonFiles } from "./paths";

/** What a running daemon publishes in `<commands>.daemon` (see PROTOCOL.md). */
export interface DaemonInfo {
  /** The absolute commands and results paths of channel 0, as the daemon resolved them. */
  readonly commands: string;
  readonly results: string;
  readonly pid: number;
  /** /proc/PID/stat field 22 of the daemon, or null where /proc is missing. */
  readonly startTime: string | null;
  readonly channels: number;
  readonly sleepTime: number;
  readonly stale: number;
  readonly version: string;
  readonly startedAt: string;
  /** The line 2 options this daemon honours beyond version 1's first set (§3, "features"). */
  readonly features: readonly CommandFeature[];
  /**
   * The mode of the files the daemon creates, and that submitters MUST give the files they
   * create (§3): published as an octal string (`"0660"`); absent or unusable reads as 0600.
   */
  readonly fileMode: number;
  /** The daemon's allow file (`--allow`): only commands it allows are run; null = no policy. */
  readonly allow: string | null;
}

/** Line 2 options added after the first release of version 1; a daemon lists those it honours. */
export const COMMAND_FEATURES = ["cwd", "env", "stdin", "stream"] as const;
export type CommandFeature = (typeof COMMAND_FEATURES)[number];

export function encodeDaemonInfo(info: DaemonInfo): string {
  return `${JSON.stringify({ v: PROTOCOL_VERSION, ...info, fileMode: encodeFileMode(info.fileMode) })}\n`;
}

/** A file mode as COMMANDS.daemon publishes it: four octal digits, `"0660"`. */
export function encodeFileMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * The published `fileMode` (§3): an octal string of a mode that lets the owner read and write
 * and nobody else write. Anything else (absent, a number, world-writable) reads as 0600: a
 * submitter never creates files more open than the protocol's default on a daemon's word it
 * cannot use.
 */
export function decodeFileMode(value: unknown): number {
  if (typeof value !== "string" || !/^0?[0-7]{3}$/.test(value)) return DEFAULT_FILE_MODE;
  const mode = parseInt(value, 8);
  return (mode & 0o600) === 0o600 && (mode & 0o002) === 0 ? mode : DEFAULT_FILE_MODE;
}

/** Decodes `COMMANDS.daemon`; null when it is not one (missing fields, garbage). `v` is kept as read. */
/** `COMMANDS.daemon` as read: the daemon's info and the protocol version it declares. */
export type PublishedInfo = DaemonInfo & { readonly v: unknown };

export function decodeDaemonInfo(content: string): PublishedInfo | null {
  const meta = parseJsonLine(Buffer.from(content.split("\n")[0] ?? "", "utf8"));
  if (meta === null || !isPid(meta.pid)) return null;
  if (typeof meta.commands !== "string" || typeof meta.results !== "string") return null;
  const channels = typeof meta.channels === "number" && Number.isSafeInteger(meta.channels) && meta.channels >= 1 ? meta.channels : 1;
  return {
    v: meta.v,
    commands: meta.commands,
    results: meta.results,
    pid: meta.pid,
    startTime: typeof meta.startTime === "string" ? meta.startTime : null,
    channels,
    sleepTime: typeof meta.sleepTime === "number" ? meta.sleepTime : 0.5,
    stale: typeof meta.stale === "number" ? meta.stale : 10_000,
    version: typeof meta.version === "string" ? meta.version : "unknown",
    startedAt: typeof meta.startedAt === "string" ? meta.startedAt : "",
    features: Array.isArray(meta.features) ? COMMAND_FEATURES.filter((feature) => (meta.features as unknown[]).includes(feature)) : [],
    fileMode: decodeFileMode(meta.fileMode),
    allow: typeof meta.allow === "string" ? meta.allow : null,
  };
}

/**
 * Whether a submitter on `files` may hand commands to the daemon that published `info`
 * (PROTOCOL.md §3, "serves"): it must speak this protocol version and write the results file
 * the submitter reads. Otherwise a command would run and its result never be seen.
 */
export function servesFiles(info: PublishedInfo, files: DaemonFiles, sameFile: (a: string, b: string) => boolean): FileDaemonError | null {
  if (info.v !== PROTOCOL_VERSION) {
    return new FileDaemonError("INCOMPATIBLE", `the file-daemon serving ${files.commands} speaks protocol version ${JSON.stringify(info.v)}; this client speaks version ${PROTOCOL_VERSION}: install the same version of file-daemon on both sides`);
  }
  if (!sameFile(info.results, files.results) || !sameFile(info.commands, files.commands)) {
    return new FileDaemonError("BAD_OPTION", `the file-daemon serving ${info.commands} writes its results to ${info.results}, but this submitter reads ${files.results}: use the same commands and results files as the daemon`);
  }
  return null;
}

/**
 * Whether the daemon that published `info` honours every line 2 option a command uses (§3,
 * "features"): one that does not would refuse it; better to say why before placing it.
 */
export function supportsFeatures(info: PublishedInfo, used: readonly CommandFeature[]): FileDaemonError | null {
  const missing = used.filter((feature) => !info.features.includes(feature));
  if (missing.length === 0) return null;
  return new FileDaemonError("INCOMPATIBLE", `the file-daemon serving ${info.commands} (version ${info.version}) cannot ${missing.map((feature) => FEATURE_NAMES[feature]).join(" or ")}: upgrade it to the version of this client`);
}

const FEATURE_NAMES: Record<CommandFeature, string> = {
  cwd: "set a command's working directory",
  env: "set a command's environment",
  stdin: "write to a command's standard input",
  stream: "stream a command's output",
};
