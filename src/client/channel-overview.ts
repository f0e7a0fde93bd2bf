import { decodeCommands } from "../protocol/command-record";
import { peekSync } from "../protocol/io/channel-state";
import { channelFiles, type DaemonFiles } from "../protocol/paths";
import { decodeResults, returnCodeLine } from "../protocol/result-record";

/** What one channel's files say now, read without taking a lock (so it may be a moment old). */
export interface ChannelOverview {
  readonly index: number;
  /** A command waits in the commands file for the daemon to take it. */
  readonly queued: string | null;
  /** The id of the command the daemon runs now. */
  readonly running: string | null;
  /** A result the daemon published that its submitter has not collected yet: its return code, and its command's id (null for a seed-style result). */
  readonly uncollected: { readonly code: number; readonly id: string | null } | null;
  /** The results file holds something no version of the protocol reads. */
  readonly unreadable: boolean;
}

/** Whether a channel does nothing: no command waits, runs or waits to be collected. */
export function isIdle(channel: ChannelOverview): boolean {
  return channel.queued === null && channel.running === null && channel.uncollected === null && !channel.unreadable;
}

/**
 * The state of each of the daemon's `channels`, from its files as they are (peeks only, never a
 * write): what `file-daemon status` prints and the editor's sidebar shows as busy or free.
 */
export function readChannels(files: DaemonFiles, channels: number): ChannelOverview[] {
  const overview: ChannelOverview[] = [];
  for (let index = 0; index < channels; index++) {
    const channel = channelFiles(files, index);
    const commands = decodeCommands(peekSync(channel.commands));
    const results = decodeResults(peekSync(channel.results));
    overview.push({
      index,
      queued: commands.kind === "pending" ? commands.record.id : null,
      running: results.kind === "running" ? results.id : null,
      uncollected: results.kind === "done" ? { code: returnCodeLine(results), id: results.id } : results.kind === "foreign" ? { code: results.code, id: null } : null,
      unreadable: results.kind === "garbage",
    });
  }
  return overview;
}
