import path from "node:path";

/** The files of one channel. Channel 0 is the pair the user named; channel k ≥ 1 appends `.k`. */
export interface ChannelFiles {
  readonly index: number;
  readonly commands: string;
  readonly results: string;
  /** Written by a submitter to ask the daemon to kill this channel's running command. */
  readonly kill: string;
  /** The daemon's trace of the ids it took from this channel (PROTOCOL.md §5, "take"). */
  readonly taken: string;
  /** Lines of the running command's output, when its submitter follows it (PROTOCOL.md §5, "stream"). */
  readonly stream: string;
  /** Written by the follower: which stream file it has open (the daemon waits for it before replacing that one). */
  readonly streamRead: string;
}

export interface DaemonFiles {
  readonly commands: string;
  readonly results: string;
  /** What the running daemon publishes about itself (JSON, see PROTOCOL.md). */
  readonly info: string;
  /** The info file's lock, held by the daemon for its whole life: a second daemon is refused. */
  readonly daemonLock: string;
  readonly directories: readonly string[];
}

export function daemonFiles(commands: string, results: string): DaemonFiles {
  const c = path.resolve(commands);
  const r = path.resolve(results);
  const directories = [...new Set([path.dirname(c), path.dirname(r)])];
  return { commands: c, results: r, info: `${c}.daemon`, daemonLock: `${c}.daemon.lock`, directories };
}

export function channelFiles(files: DaemonFiles, index: number): ChannelFiles {
  const suffix = index === 0 ? "" : `.${index}`;
  const commands = files.commands + suffix;
  const results = files.results + suffix;
  return { index, commands, results, kill: `${commands}.kill`, taken: `${commands}.taken`, stream: `${results}.stream`, streamRead: `${results}.stream.read` };
}

export function lockPath(file: string): string {
  return `${file}.lock`;
}
