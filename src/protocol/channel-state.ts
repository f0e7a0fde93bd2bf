import { DEFAULT_FILE_MODE, readFileOrEmpty, writeFileAtomic } from "./atomic-write";
import { decodeCommands, type DecodedCommands } from "./command-record";
import { fromFsError } from "./errors";
import { release, tryLock, type LockOptions } from "./lock";
import type { ChannelFiles } from "./paths";
import { decodeResults, type DecodedResults } from "./result-record";

/** Both files of a channel, read while holding both locks (commands first, then results). */
export interface LockedChannel {
  readonly commands: DecodedCommands;
  readonly results: DecodedResults;
  writeCommands(content: string): Promise<void>;
  writeResults(content: string): Promise<void>;
}

/**
 * Takes the commands lock, then the results lock (always in that order, so two parties
 * never wait on each other), reads both files and runs `fn`. Resolves to `busy` when either
 * lock is held by someone else; the caller retries after a change or `sleep_time`.
 */
export async function withChannelLocked<T>(
  channel: ChannelFiles,
  lock: LockOptions,
  fn: (state: LockedChannel) => Promise<T>,
  fileMode = DEFAULT_FILE_MODE,
): Promise<T | "busy"> {
  const releaseCommands = await tryLock(channel.commands, lock);
  if (releaseCommands === null) return "busy";
  try {
    const releaseResults = await tryLock(channel.results, lock);
    if (releaseResults === null) return "busy";
    try {
      const state: LockedChannel = {
        commands: decodeCommands(await read(channel.commands)),
        results: decodeResults(await read(channel.results)),
        writeCommands: (content) => write(channel.commands, content, fileMode),
        writeResults: (content) => write(channel.results, content, fileMode),
      };
      return await fn(state);
    } finally {
      await release(releaseResults);
    }
  } finally {
    await release(releaseCommands);
  }
}

async function read(file: string): Promise<Buffer> {
  try {
    return await readFileOrEmpty(file);
  } catch (err) {
    throw fromFsError(err, file, "cannot read");
  }
}

async function write(file: string, content: string, mode: number): Promise<void> {
  try {
    await writeFileAtomic(file, content, mode);
  } catch (err) {
    throw fromFsError(err, file, "cannot write");
  }
}

/** Reads a channel file without its lock: a hint only (writes are atomic renames), never a decision. */
export async function peek(file: string): Promise<Buffer> {
  return read(file);
}
