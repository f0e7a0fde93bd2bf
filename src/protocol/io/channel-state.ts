import { readFileOrEmptySync, writeFileAtomicSync } from "./atomic-write";
import { DEFAULT_FILE_MODE } from "../limits";
import { decodeCommands, type DecodedCommands } from "../command-record";
import { FileDaemonError, fromFsError } from "../errors";
import { tryLock, type HeldLock, type LockOptions } from "./lock";
import type { ChannelFiles } from "../paths";
import { decodeResults, type DecodedResults } from "../result-record";
import { decodeTrace, encodeTrace, type TakenTrace } from "../taken-trace";
import type { Writes } from "../transitions";

/**
 * A channel's files as read while holding both its locks: the commands file first, then the
 * results file, then the taken trace (the daemon writes them in the reverse order, so a reader
 * that finds the command gone also finds what took it, PROTOCOL.md §2).
 */
export interface LockedChannel {
  readonly commands: DecodedCommands;
  readonly results: DecodedResults;
  readonly trace: TakenTrace | null;
  writeCommands(content: string): void;
  writeResults(content: string): void;
  writeTrace(trace: TakenTrace): void;
  /** Throws LockLostError unless both locks are still this process's (call before acting on what was read). */
  confirmHeld(): void;
}

/** A lock of ours was taken over while we held it: nothing read under it may be acted on. */
export class LockLostError extends FileDaemonError {
  constructor(file: string) {
    super("IO", `lost the lock on ${file} to another party (held longer than the stale time: was this process frozen?); nothing was acted on`);
  }
}

/** The outcome of trying a channel's locks: not held (someone else has one: retry later), or what `fn` returned. */
export type LockAttempt<T> = { readonly held: false } | { readonly held: true; readonly value: T };

/**
 * Takes the commands lock, then the results lock (always in that order, so two parties
 * never wait on each other) and runs `fn` with a check that both are still ours (PROTOCOL.md
 * §2, "lost lock"); nothing is read. Not held when either lock is someone else's.
 */
export function withBothLocks<T>(channel: ChannelFiles, lock: LockOptions, fn: (confirmHeld: () => void) => T): LockAttempt<T> {
  const commandsLock = tryLock(channel.commands, lock);
  if (commandsLock === null) return { held: false };
  try {
    const resultsLock = tryLock(channel.results, lock);
    if (resultsLock === null) return { held: false };
    try {
      return {
        held: true,
        value: fn(() => {
          for (const [held, file] of [[commandsLock, channel.commands], [resultsLock, channel.results]] as const) {
            if (!held.stillHeld()) throw new LockLostError(file);
          }
        }),
      };
    } finally {
      releaseQuietly(resultsLock);
    }
  } finally {
    releaseQuietly(commandsLock);
  }
}

/**
 * Both locks (withBothLocks), then the channel read in the protocol's order and handed to
 * `fn`; every write first checks that both locks are still ours. The caller retries a channel
 * whose locks were not held after a change or `sleep_time`.
 */
export function withChannelLocked<T>(channel: ChannelFiles, lock: LockOptions, fn: (state: LockedChannel) => T, fileMode = DEFAULT_FILE_MODE): LockAttempt<T> {
  return withBothLocks(channel, lock, (confirmHeld) => {
    const guardedWrite = (file: string, content: string) => {
      confirmHeld();
      write(file, content, fileMode);
    };
    const commands = decodeCommands(readSync(channel.commands));
    const results = decodeResults(readSync(channel.results));
    // Read when a transition first asks (still after the other two, under the same locks):
    // collecting and publishing never do, and it is the longest of the three files.
    let trace: TakenTrace | null | undefined;
    return fn({
      commands,
      results,
      get trace() {
        trace ??= decodeTrace(readSync(channel.taken));
        return trace;
      },
      writeCommands: (content) => guardedWrite(channel.commands, content),
      writeResults: (content) => guardedWrite(channel.results, content),
      writeTrace: (trace) => guardedWrite(channel.taken, encodeTrace(trace)),
      confirmHeld,
    });
  });
}

/** Performs a transition's writes (protocol/transitions.ts) in the protocol's order: trace, results, commands. */
export function applyWrites(state: LockedChannel, writes: Writes): void {
  if (writes.trace !== undefined) state.writeTrace(writes.trace);
  if (writes.results !== undefined) state.writeResults(writes.results);
  if (writes.commands !== undefined) state.writeCommands(writes.commands);
}

function releaseQuietly(held: HeldLock): void {
  try {
    held.release();
  } catch {
    // A lock we cannot remove (its directory vanished or turned unwritable) goes stale by itself.
  }
}

/** Reads a channel file; a missing file reads as empty. */
export function readSync(file: string): Buffer {
  try {
    return readFileOrEmptySync(file);
  } catch (err) {
    throw fromFsError(err, file, "cannot read");
  }
}

function write(file: string, content: string, mode: number): void {
  try {
    writeFileAtomicSync(file, content, mode);
  } catch (err) {
    throw fromFsError(err, file, "cannot write");
  }
}

/** Reads a channel file without its lock: a hint only (writes are atomic renames), never a decision. */
export function peekSync(file: string): Buffer {
  return readSync(file);
}
