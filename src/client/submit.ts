import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { applyWrites, peekSync, withChannelLocked, type LockAttempt } from "../protocol/io/channel-state";
import { validateCommand } from "../protocol/command-line";
import { decodeCommands, type CommandRecord } from "../protocol/command-record";
import { supportsFeatures, type DaemonInfo, type PublishedInfo } from "../protocol/daemon-info";
import { readLiveDaemon, checkServes } from "../protocol/io/live-daemon";
import { FileDaemonError, fromFsError, type FileDaemonErrorCode } from "../protocol/errors";
import { FAILURE_CODES } from "../protocol/outcome-codes";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import { encodeKillRequest, isSignalName } from "../protocol/kill-request";
import { isOwnerGone, pidNamespace } from "../protocol/io/liveness";
import { DEFAULT_FILE_MODE, effectiveStale } from "../protocol/limits";
import { channelFiles, daemonFiles, lockPath, type ChannelFiles, type DaemonFiles } from "../protocol/paths";
import { decodeResults, type DoneRecord, type Outcome } from "../protocol/result-record";
import type { TraceAnchor } from "../protocol/taken-trace";
import { look, place, type LookDecision, type Writes } from "../protocol/transitions";
import { acquireSharedWatch, type DirectoryWatch } from "../protocol/io/dir-watch";
import { checkPath, DEFAULT_DAEMON_WAIT, sleepTimeMs, timeoutMs } from "../shared/settings";
import { commandExtras, type CommandExtras } from "./command-extras";
import { StreamFollower, type OutputLine } from "./stream-follower";

export interface SubmitOptions {
  /** Seconds the command may run before the daemon kills its process group; 0 = no limit. */
  readonly timeout?: number;
  /** Return stdout and stderr (each cut at the daemon's capture limit, 64 KiB by default). */
  readonly capture?: boolean;
  /**
   * Aborting withdraws a command that has not started, or kills one that runs: with the signal
   * named by the abort's reason (`controller.abort("SIGINT")`), else SIGTERM, sent to its whole
   * process group, then SIGKILL after the daemon's kill grace.
   */
  readonly signal?: AbortSignal;
  /**
   * Seconds to wait for a daemon to (re)appear before failing with DAEMON_NOT_RUNNING (default 5):
   * one may be starting. A running command whose daemon dies fails with DAEMON_DIED at once,
   * unless this is given: then a restarted daemon's report (INTERRUPTED) is awaited that long.
   */
  readonly daemonWait?: number;
  /** Use change events (default); false polls every sleep_time only. */
  readonly watch?: boolean;
  /** Lock staleness in ms (must match the daemon's; default 10000). */
  readonly stale?: number;
  /** The command's working directory (absolute; it must exist where the daemon runs); default the daemon's. */
  readonly cwd?: string;
  /** Environment variables set over the daemon's own for this command. */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to the command's standard input (at most 1 MiB); without it, stdin is /dev/null. */
  readonly stdin?: string | Buffer;
  /**
   * Called with each line of output while the command runs (and after, until every line is
   * in): the command is then followed (PROTOCOL.md §5, "stream"). The result says how many
   * lines there were (`streamed`) and how many this follower missed (`missed`).
   */
  readonly onLine?: (line: OutputLine) => void;
}

/** A command's outcome (PROTOCOL.md §4: `code` null when a signal ended it), its id and the channel it ran on. */
export type CommandResult = Outcome & {
  readonly id: string;
  readonly channel: number;
  /** For a followed command: lines of the stream not delivered to `onLine` (0 when it kept up). */
  readonly missed?: number;
};

/** The error for a command that did not end by itself; `result` is set when it did run. */
export class CommandFailedError extends FileDaemonError {
  constructor(
    code: FileDaemonErrorCode,
    message: string,
    readonly result: CommandResult | null,
  ) {
    super(code, message);
  }
}

/** How soon a submitter tries a busy lock again (ms), when that is sooner than sleep_time. */
const BUSY_RETRY_MS = 2;

/** Base names of a channel's lock directories: releasing one wakes a waiter on a busy lock. */
function lockNames(channel: ChannelFiles): string[] {
  return [lockPath(channel.commands), lockPath(channel.results)].map((file) => path.basename(file));
}

/** How long a sighting of the live daemon is taken as still true (PROTOCOL.md §3, "alive"). */
const ALIVE_FOR_MS = 50;

/**
 * The last sighting of a live daemon, per info file, shared by every submission of this
 * process: a command looks several times within milliseconds, and commands sent one after
 * another would each read the info file, /proc and the lock again. "Gone" is never kept.
 */
const sightings = new Map<string, { readonly daemon: PublishedInfo; readonly at: number }>();

function liveDaemon(files: DaemonFiles): PublishedInfo | null {
  const seen = sightings.get(files.info);
  if (seen !== undefined && performance.now() - seen.at < ALIVE_FOR_MS) return seen.daemon;
  const daemon = readLiveDaemon(files);
  if (daemon === null) sightings.delete(files.info);
  else sightings.set(files.info, { daemon, at: performance.now() });
  return daemon;
}

/** How often a follower looks at the stream file when no change event came (ms). */
const FOLLOW_POLL_MS = 100;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** How many times a command that provably never started is placed again (PROTOCOL.md §5). */
const MAX_REPLACEMENTS = 3;

/**
 * Runs `command` through the daemon serving `commandsPath` / `resultsPath` and resolves to
 * its result. The seed's signature: `sleepTime` is in seconds. Only file operations: this
 * never starts a process.
 */
export async function submitCommand(
  command: string,
  commandsPath: string,
  resultsPath: string,
  sleepTime: number,
  options: SubmitOptions = {},
): Promise<CommandResult> {
  validateCommand(command);
  const extras = commandExtras(options);
  const files = daemonFiles(checkPath(commandsPath, "commands"), checkPath(resultsPath, "results"));
  if (files.commands === files.results) throw new FileDaemonError("BAD_OPTION", `the commands and results files must be different files, got ${files.commands} for both`);
  const submission = new Submission(files, sleepTimeMs(sleepTime), options, extras);
  try {
    return await submission.run(command);
  } finally {
    submission.close();
  }
}

interface Placed {
  readonly channel: ChannelFiles;
  readonly anchor: TraceAnchor | null;
  /** The change count read before the command was placed: waiting starts from it. */
  readonly since: number;
}

class Submission {
  private readonly watch: DirectoryWatch;
  private readonly releaseWatch: () => void;
  /** The daemon's published staleness unless the caller set one. */
  private stale: number;
  /** The daemon's published file mode (§3): every file this submitter creates gets it. */
  private fileMode = DEFAULT_FILE_MODE;
  private readonly timeoutMs: number;
  private readonly daemonWaitMs: number;
  /** A running command's daemon that died is waited for only as long as the caller asked (a restart's recovery report); by default not at all. */
  private readonly runningWaitMs: number;
  private deadSince: number | null = null;
  private killRequested = false;
  private follower: StreamFollower | null = null;

  constructor(
    private readonly files: DaemonFiles,
    private readonly sleepMs: number,
    private readonly options: SubmitOptions,
    private readonly extras: CommandExtras,
  ) {
    this.timeoutMs = timeoutMs(options.timeout);
    this.daemonWaitMs = timeoutMs(options.daemonWait ?? DEFAULT_DAEMON_WAIT, "daemonWait");
    this.runningWaitMs = options.daemonWait === undefined ? 0 : this.daemonWaitMs;
    this.stale = effectiveStale(options.stale);
    ({ watch: this.watch, release: this.releaseWatch } = acquireSharedWatch(files.directories, options.watch ?? true));
  }

  close(): void {
    this.releaseWatch();
  }

  async run(command: string): Promise<CommandResult> {
    const record: CommandRecord = {
      command,
      id: randomUUID(),
      pid: process.pid,
      pidns: pidNamespace(),
      timeoutMs: this.timeoutMs,
      capture: this.options.capture ?? false,
      ...this.extras.record,
      legacy: false,
    };
    for (let times = 1; ; times++) {
      const placed = await this.place(record);
      const outcome = await this.awaitFollowing(placed, record.id);
      if (outcome !== "vanished") return outcome;
      if (times > MAX_REPLACEMENTS) {
        throw new FileDaemonError("LOST", `the command was removed from ${placed.channel.commands} ${times} times before the daemon took it (another program is writing these files?); it did not run`);
      }
    }
  }

  /** Writes the command into the first free channel, waiting for one to free up. */
  private async place(record: CommandRecord): Promise<Placed> {
    const offset = Math.floor(Math.random() * 64);
    for (;;) {
      this.throwIfAbortedBeforeStart();
      const generation = this.watch.changes.generation;
      const daemon = this.requireDaemon();
      let busy = false;
      const names = new Set<string>();
      const locks = new Set<string>();
      for (let i = 0; daemon !== null && i < daemon.channels; i++) {
        const channel = channelFiles(this.files, (offset + i) % daemon.channels);
        const attempt = this.tryPlaceOrExplain(channel, record);
        if (!attempt.held) busy = true;
        else if (attempt.value !== null) return { channel, anchor: attempt.value.anchor, since: generation };
        names.add(path.basename(channel.commands)).add(path.basename(channel.results));
        for (const name of lockNames(channel)) locks.add(name);
      }
      // A channel frees up when its results file is emptied; a held lock, within milliseconds.
      if (busy) await this.watch.changes.wait(this.watch.changes.generation, Math.min(this.sleepMs, BUSY_RETRY_MS), this.options.signal, locks);
      else await this.watch.changes.wait(generation, this.sleepMs, this.options.signal, daemon === null ? null : names);
    }
  }

  /**
   * tryPlace; when it fails on a sighting of the daemon that may be up to 50 ms old, the daemon
   * and directories are looked at afresh first, so a directory removed meanwhile is reported as
   * that ("cannot use directory …"), not as the lock it made impossible.
   */
  private tryPlaceOrExplain(channel: ChannelFiles, record: CommandRecord): ReturnType<Submission["tryPlace"]> {
    try {
      return this.tryPlace(channel, record);
    } catch (err) {
      sightings.delete(this.files.info);
      this.requireDaemon();
      throw err;
    }
  }

  /** Places the command on `channel` if it is free: the anchor then, null when it is in use. */
  private tryPlace(channel: ChannelFiles, record: CommandRecord): LockAttempt<{ readonly anchor: TraceAnchor | null } | null> {
    // Hints first: a channel that is plainly in use is not worth locking.
    const inUse = { held: true, value: null } as const;
    if (decodeCommands(peekSync(channel.commands)).kind !== "empty") return inUse;
    const hint = decodeResults(peekSync(channel.results));
    if (hint.kind !== "empty" && !(hint.kind === "done" && isOwnerGone(hint))) return inUse;
    return withChannelLocked(channel, { stale: this.stale }, (state) => {
      const decision = place(state, record, isOwnerGone);
      if (decision.kind === "skip") return null;
      applyWrites(state, decision.writes);
      return { anchor: decision.anchor };
    }, this.fileMode);
  }

  /** `await`, and for a followed command its output meanwhile: every line is handed on before the result. */
  private async awaitFollowing(placed: Placed, id: string): Promise<CommandResult | "vanished"> {
    const onLine = this.options.onLine;
    if (onLine === undefined) return this.await(placed, id);
    const follower = new StreamFollower(placed.channel, id, this.fileMode, onLine);
    this.follower = follower;
    const following = { on: true };
    const reading = this.follow(follower, placed.channel, following);
    let outcome: CommandResult | "vanished";
    try {
      outcome = await this.await(placed, id);
    } catch (err) {
      following.on = false;
      await reading;
      const ran = err instanceof CommandFailedError ? err.result : null;
      await follower.finish(ran?.streamed ?? 0, nextTurn);
      follower.rethrow();
      if (err instanceof CommandFailedError && ran !== null) throw new CommandFailedError(err.code, err.message, { ...ran, missed: follower.missed });
      throw err;
    } finally {
      following.on = false;
      this.follower = null;
    }
    await reading;
    if (outcome === "vanished") {
      follower.close();
      return outcome;
    }
    await follower.finish(outcome.streamed ?? 0, nextTurn);
    // What onLine threw is the caller's own error; the command has ended and its result is collected.
    follower.rethrow();
    return { ...outcome, missed: follower.missed };
  }

  /** Reads the stream file as it grows, a slice per turn of the event loop, until told to stop. */
  private async follow(follower: StreamFollower, channel: ChannelFiles, following: { on: boolean }): Promise<void> {
    const names = new Set([path.basename(channel.stream)]);
    while (following.on) {
      const generation = this.watch.changes.generation;
      if (follower.pollOrStop()) await nextTurn();
      else await this.watch.changes.wait(generation, Math.min(this.sleepMs, FOLLOW_POLL_MS), undefined, names);
    }
  }

  /** Waits for the command's result on `channel`; "vanished" when it provably never started. */
  private async await({ channel, anchor, since }: Placed, id: string): Promise<CommandResult | "vanished"> {
    let seenRunning = false;
    const resultsOnly = new Set([path.basename(channel.results)]);
    const locks = new Set(lockNames(channel));
    // Just placed, so pending: nothing to look at until the daemon writes the results file
    // (a write since before the placing counts, so none is missed).
    await this.watch.changes.wait(since, this.sleepMs, this.options.signal, resultsOnly);
    for (;;) {
      const generation = this.watch.changes.generation;
      const aborted = this.options.signal?.aborted ?? false;
      const hint = decodeResults(peekSync(channel.results));
      let lookNow = true;
      if (!seenRunning && hint.kind === "empty" && !aborted) {
        // Still pending (a hint): no need to lock while the daemon has yet to take it.
        const commands = decodeCommands(peekSync(channel.commands));
        if (commands.kind === "pending" && commands.record.id === id) lookNow = !this.daemonAliveOrExcused(this.daemonWaitMs);
      }
      if (hint.kind === "running" && hint.id === id) {
        seenRunning = true;
        lookNow = !this.daemonAliveOrExcused(this.runningWaitMs);
        if (aborted && !this.killRequested) this.requestKill(channel, id);
      }
      let busy = false;
      if (lookNow) {
        const step = withChannelLocked(channel, { stale: this.stale }, (state) => {
          const decision = look(state, { id, anchor, seenRunning, aborted, daemonAlive: () => this.daemonAliveOrExcused(this.runningWaitMs), daemonExpected: () => this.daemonAliveOrExcused(this.daemonWaitMs) });
          return this.act(channel, decision, (writes) => applyWrites(state, writes), () => state.confirmHeld());
        }, this.fileMode);
        if (!step.held) busy = true;
        else if (step.value === "running") seenRunning = true;
        else if (step.value !== "pending") return step.value;
      }
      const abort = this.killRequested ? undefined : this.options.signal;
      if (busy) {
        // Someone holds a lock for a few file operations: look again when it is released.
        await this.watch.changes.wait(this.watch.changes.generation, Math.min(this.sleepMs, BUSY_RETRY_MS), abort, locks);
      } else {
        // Pending or running, only the daemon's write of the results file can matter.
        await this.watch.changes.wait(generation, this.sleepMs, abort, resultsOnly);
      }
    }
  }

  /** Performs what `look` decided, under the locks: returns the result, a state to wait in, "vanished", or throws. */
  private act(channel: ChannelFiles, decision: LookDecision, write: (writes: Writes) => void, confirmHeld: () => void): CommandResult | "pending" | "running" | "vanished" {
    switch (decision.kind) {
      case "collect":
        // The stream file is the follower's to remove, now that nothing more will be appended to
        // it; first (under locks confirmed still ours), so that a lock lost while emptying the
        // results leaves it nothing to lose.
        if (this.follower !== null) {
          confirmHeld();
          this.follower.detach();
        }
        write(decision.writes);
        return this.interpret(decision.done, channel.index);
      case "wait":
        return decision.state;
      case "vanished":
        return "vanished";
      case "withdraw":
        write(decision.writes);
        // "Did not run" is only true if nobody took the lock from us meanwhile (PROTOCOL.md §2).
        confirmHeld();
        if (decision.because === "aborted") throw new FileDaemonError("ABORTED", "aborted before the command started; it was withdrawn and did not run");
        throw new FileDaemonError("DAEMON_NOT_RUNNING", `no file-daemon has served ${this.files.commands} for ${this.daemonWaitMs / 1000} s; the command was withdrawn and did not run. Start the daemon (file-daemon ${this.files.results} ${this.files.commands} ${this.sleepMs / 1000})`);
      case "daemon-died":
        // Nobody will write this result now; leave the channel free for the next daemon.
        write(decision.writes);
        throw new FileDaemonError("DAEMON_DIED", `the file-daemon serving ${this.files.commands} died while the command ran; its outcome is unknown and it will not be run again`);
      case "unknown":
        throw new FileDaemonError(
          "INTERRUPTED",
          decision.taken
            ? `the daemon took the command but its result disappeared from ${channel.results} (taken by another program reading these files?); its outcome is unknown and it is not run again`
            : `the command disappeared from ${channel.commands} and the daemon's trace cannot show whether it started; its outcome is unknown and it is not run again`,
        );
    }
  }

  /** True while a daemon is alive, or has been gone for less than `waitMs` (it may be restarting). */
  private daemonAliveOrExcused(waitMs: number): boolean {
    if (liveDaemon(this.files) !== null) {
      this.deadSince = null;
      return true;
    }
    this.deadSince ??= performance.now();
    return performance.now() - this.deadSince < waitMs;
  }

  /** Asks the daemon to kill the running command, with the signal named by the abort's reason (`controller.abort("SIGINT")`), else SIGTERM. */
  private requestKill(channel: ChannelFiles, id: string): void {
    this.killRequested = true;
    const reason: unknown = this.options.signal?.reason;
    try {
      writeFileAtomicSync(channel.kill, encodeKillRequest({ id, signal: isSignalName(reason) ? reason : "SIGTERM" }), this.fileMode);
    } catch (err) {
      throw fromFsError(err, channel.kill, "cannot ask the daemon to kill the command:");
    }
  }

  private interpret(done: DoneRecord, channel: number): CommandResult {
    const result: CommandResult = {
      code: done.code,
      signal: done.signal,
      status: done.status,
      message: done.message,
      stdout: done.stdout,
      stderr: done.stderr,
      stdoutTruncated: done.stdoutTruncated,
      stderrTruncated: done.stderrTruncated,
      durationMs: done.durationMs,
      ...(done.streamed === undefined ? {} : { streamed: done.streamed }),
      id: done.id,
      channel,
    };
    const failure = FAILURE_CODES[done.status];
    if (failure === null) return result;
    const message = done.message ?? `the command ended with status ${done.status}`;
    throw new CommandFailedError(failure, message, result);
  }

  /** The live daemon serving our files, or null while one may still appear; throws when none will. */
  private requireDaemon(): DaemonInfo | null {
    const daemon = liveDaemon(this.files);
    if (daemon !== null) {
      const mismatch = checkServes(daemon, this.files);
      if (mismatch !== null) throw mismatch;
      const unsupported = supportsFeatures(daemon, this.extras.features);
      if (unsupported !== null) throw unsupported;
      this.deadSince = null;
      this.fileMode = daemon.fileMode;
      if (this.options.stale === undefined) this.stale = effectiveStale(daemon.stale);
      return daemon;
    }
    // A missing or unusable directory is not a daemon that is still starting: say so at once.
    for (const dir of this.files.directories) {
      try {
        fs.accessSync(dir);
      } catch (err) {
        throw fromFsError(err, dir, "cannot use directory");
      }
    }
    this.deadSince ??= performance.now();
    if (performance.now() - this.deadSince >= this.daemonWaitMs) {
      throw new FileDaemonError("DAEMON_NOT_RUNNING", `no file-daemon served ${this.files.commands} within ${this.daemonWaitMs / 1000} s; start it with: file-daemon ${this.files.results} ${this.files.commands} ${this.sleepMs / 1000}`);
    }
    return null;
  }

  private throwIfAbortedBeforeStart(): void {
    if (this.options.signal?.aborted) throw new FileDaemonError("ABORTED", "aborted before the command was placed; it did not run");
  }
}
