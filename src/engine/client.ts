import { randomUUID } from "node:crypto";
import path from "node:path";
import { promises as fsp } from "node:fs";
import { peek, withChannelLocked, type LockedChannel } from "../protocol/channel-state";
import { validateCommand } from "../protocol/command-line";
import { decodeCommands, encodeCommandRecord, type CommandRecord } from "../protocol/command-record";
import { readLiveDaemon, servesFiles, type DaemonInfo } from "../protocol/daemon-info";
import { FileDaemonError, fromFsError, type FileDaemonErrorCode } from "../protocol/errors";
import { writeFileAtomic } from "../protocol/atomic-write";
import { isOwnerGone, pidNamespace } from "../protocol/liveness";
import { DEFAULT_STALE_MS } from "../protocol/lock";
import { channelFiles, daemonFiles, lockPath, type ChannelFiles, type DaemonFiles } from "../protocol/paths";
import { decodeResults, isRecord, type DoneRecord, type ResultStatus } from "../protocol/result-record";
import { acquireSharedWatch, type DirectoryWatch } from "./dir-watch";
import { checkPath, sleepTimeMs, timeoutMs } from "./settings";

export interface SubmitOptions {
  /** Seconds the command may run before the daemon kills its process group; 0 = no limit. */
  readonly timeout?: number;
  /** Return stdout and stderr (each cut at the daemon's capture limit, 64 KiB by default). */
  readonly capture?: boolean;
  /** Aborting withdraws a command that has not started, or kills one that runs. */
  readonly signal?: AbortSignal;
  /** Seconds to wait for a daemon to (re)appear before failing with DAEMON_NOT_RUNNING. */
  readonly daemonWait?: number;
  /** Use change events (default); false polls every sleep_time only. */
  readonly watch?: boolean;
  /** Lock staleness in ms (must match the daemon's; default 10000). */
  readonly stale?: number;
}

export interface CommandResult {
  /** Exit status, or null when the command died of a signal. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly status: ResultStatus;
  readonly message: string | null;
  readonly stdout: Buffer | null;
  readonly stderr: Buffer | null;
  readonly stdoutTruncated: boolean;
  readonly stderrTruncated: boolean;
  readonly durationMs: number;
  readonly id: string;
  readonly channel: number;
}

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

const FAILURE_CODES: Partial<Record<ResultStatus, FileDaemonErrorCode>> = {
  timeout: "TIMEOUT",
  killed: "KILLED",
  interrupted: "INTERRUPTED",
  failed: "SPAWN_FAILED",
  refused: "BAD_COMMAND",
};

/** How soon a submitter tries a busy lock again (ms), when that is sooner than sleep_time. */
const BUSY_RETRY_MS = 2;

/** Base names of a channel's lock directories: releasing one wakes a waiter on a busy lock. */
function lockNames(channel: ChannelFiles): string[] {
  return [lockPath(channel.commands), lockPath(channel.results)].map((file) => path.basename(file));
}

/** How many times a command that vanished before it started is placed again (see PROTOCOL.md). */
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
  const files = daemonFiles(checkPath(commandsPath, "commands"), checkPath(resultsPath, "results"));
  if (files.commands === files.results) throw new FileDaemonError("BAD_OPTION", `the commands and results files must be different files, got ${files.commands} for both`);
  const submission = new Submission(files, sleepTimeMs(sleepTime), options);
  try {
    return await submission.run(command);
  } finally {
    submission.close();
  }
}

type Seen = "pending" | "running" | "gone";

class Submission {
  private readonly watch: DirectoryWatch;
  private readonly releaseWatch: () => void;
  /** The daemon's published staleness unless the caller set one. */
  private stale: number;
  private readonly timeoutMs: number;
  private readonly daemonWaitMs: number;
  private deadSince: number | null = null;
  private killRequested = false;

  constructor(
    private readonly files: DaemonFiles,
    private readonly sleepMs: number,
    private readonly options: SubmitOptions,
  ) {
    this.timeoutMs = timeoutMs(options.timeout);
    this.daemonWaitMs = timeoutMs(options.daemonWait, "daemonWait");
    this.stale = Math.max(2000, options.stale ?? DEFAULT_STALE_MS);
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
      legacy: false,
    };
    for (let placed = 1; ; placed++) {
      const channel = await this.place(record);
      const outcome = await this.await(channel, record.id);
      if (outcome !== "vanished") return outcome;
      if (placed > MAX_REPLACEMENTS) {
        throw new FileDaemonError("LOST", `the command vanished from ${channel.commands} ${placed} times before it started (another program is writing these files?); it did not run`);
      }
    }
  }

  /** Writes the command into the first free channel, waiting for one to free up. */
  private async place(record: CommandRecord): Promise<ChannelFiles> {
    const offset = Math.floor(Math.random() * 64);
    for (;;) {
      this.throwIfAbortedBeforeStart();
      const generation = this.watch.changes.generation;
      const daemon = await this.requireDaemon();
      let busy = false;
      const names = new Set<string>();
      const locks = new Set<string>();
      for (let i = 0; daemon !== null && i < daemon.channels; i++) {
        const channel = channelFiles(this.files, (offset + i) % daemon.channels);
        const outcome = await this.tryPlace(channel, record);
        if (outcome === true) return channel;
        busy ||= outcome === "busy";
        names.add(path.basename(channel.commands)).add(path.basename(channel.results));
        for (const name of lockNames(channel)) locks.add(name);
      }
      // A channel frees up when its results file is emptied; a held lock, within milliseconds.
      if (busy) await this.watch.changes.wait(this.watch.changes.generation, Math.min(this.sleepMs, BUSY_RETRY_MS), this.options.signal, locks);
      else await this.watch.changes.wait(generation, this.sleepMs, this.options.signal, daemon === null ? null : names);
    }
  }

  private async tryPlace(channel: ChannelFiles, record: CommandRecord): Promise<boolean | "busy"> {
    if (decodeCommands(await peek(channel.commands)).kind !== "empty") return false;
    const hint = decodeResults(await peek(channel.results));
    if (hint.kind !== "empty" && !(hint.kind === "done" && isOwnerGone(hint))) return false;
    const placed = await withChannelLocked(channel, { stale: this.stale }, async (state) => {
      if (state.commands.kind !== "empty") return false;
      const results = state.results;
      if (results.kind !== "empty") {
        // A finished result whose submitter has died will never be collected: clear it.
        if (results.kind !== "done" || !isOwnerGone(results)) return false;
        await state.writeResults("");
      }
      await state.writeCommands(encodeCommandRecord(record));
      return true;
    });
    return placed;
  }

  /** Waits for the command's result on `channel`; "vanished" when it disappeared unstarted. */
  private async await(channel: ChannelFiles, id: string): Promise<CommandResult | "vanished"> {
    let started = false;
    const resultsOnly = new Set([path.basename(channel.results)]);
    const locks = new Set(lockNames(channel));
    for (;;) {
      const generation = this.watch.changes.generation;
      const hint = decodeResults(await peek(channel.results));
      let look = true;
      let busy = false;
      if (!started && hint.kind === "empty" && !this.options.signal?.aborted) {
        // Still pending (a hint): no need to lock while the daemon has yet to take it.
        const commands = decodeCommands(await peek(channel.commands));
        if (commands.kind === "pending" && commands.record.id === id) look = !(await this.daemonAliveOrExcused());
      }
      if (hint.kind === "running" && hint.id === id) {
        started = true;
        look = !(await this.daemonAliveOrExcused());
        if (this.options.signal?.aborted && !this.killRequested) await this.requestKill(channel, id);
      }
      if (look) {
        const step = await withChannelLocked(channel, { stale: this.stale }, (state) => this.step(channel, state, id));
        if (typeof step === "object") return step;
        busy = step === "busy";
        if (step === "running") started = true;
        if (step === "gone") {
          if (started) throw new FileDaemonError("INTERRUPTED", `the command started but its result disappeared from ${channel.results} (cleared by another program?); its outcome is unknown`);
          return "vanished";
        }
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

  /** True while a daemon is alive, or has been gone for less than `daemonWait`. */
  private async daemonAliveOrExcused(): Promise<boolean> {
    if ((await readLiveDaemon(this.files)) !== null) {
      this.deadSince = null;
      return true;
    }
    this.deadSince ??= performance.now();
    return performance.now() - this.deadSince < this.daemonWaitMs;
  }

  /** One look at the channel under both locks: collect, keep waiting, or give up. */
  private async step(channel: ChannelFiles, state: LockedChannel, id: string): Promise<CommandResult | Seen> {
    const { commands, results } = state;
    let seen: Seen = "gone";
    if (isRecord(results) && results.id === id) {
      if (results.kind === "done") {
        await state.writeResults("");
        return this.interpret(results, channel.index);
      }
      seen = "running";
    } else if (commands.kind === "pending" && commands.record.id === id) {
      seen = "pending";
    }
    if (seen === "gone") return seen;
    if (seen === "pending" && this.options.signal?.aborted) {
      await state.writeCommands("");
      throw new FileDaemonError("ABORTED", "aborted before the command started; it was withdrawn and did not run");
    }
    if (await this.daemonAliveOrExcused()) return seen;
    if (seen === "pending") {
      await state.writeCommands("");
      throw new FileDaemonError("DAEMON_NOT_RUNNING", `no file-daemon serves ${this.files.commands}; the command was withdrawn and did not run. Start the daemon (file-daemon ${this.files.results} ${this.files.commands} ${this.sleepMs / 1000})`);
    }
    // Nobody will write this result now; leave the channel free for the next daemon.
    await state.writeResults("");
    throw new FileDaemonError("DAEMON_DIED", `the file-daemon serving ${this.files.commands} died while the command ran; its outcome is unknown and it will not be run again`);
  }

  private async requestKill(channel: ChannelFiles, id: string): Promise<void> {
    this.killRequested = true;
    try {
      await writeFileAtomic(channel.kill, `${id}\n`);
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
      id: done.id,
      channel,
    };
    const failure = FAILURE_CODES[done.status];
    if (failure === undefined) return result;
    const message = done.message ?? `the command ended with status ${done.status}`;
    throw new CommandFailedError(failure, message, result);
  }

  private async requireDaemon(): Promise<DaemonInfo | null> {
    const daemon = await readLiveDaemon(this.files);
    if (daemon !== null) {
      const mismatch = servesFiles(daemon, this.files);
      if (mismatch !== null) throw mismatch;
      this.deadSince = null;
      if (this.options.stale === undefined) this.stale = Math.max(2000, daemon.stale);
      return daemon;
    }
    this.deadSince ??= performance.now();
    if (performance.now() - this.deadSince >= this.daemonWaitMs) {
      const dirs = await Promise.all(this.files.directories.map((dir) => fsp.access(dir).then(() => null, (err: unknown) => fromFsError(err, dir, "cannot use directory"))));
      const missing = dirs.find((err) => err !== null);
      if (missing) throw missing;
      throw new FileDaemonError("DAEMON_NOT_RUNNING", `no file-daemon serves ${this.files.commands}; start it with: file-daemon ${this.files.results} ${this.files.commands} ${this.sleepMs / 1000}`);
    }
    return null;
  }

  private throwIfAbortedBeforeStart(): void {
    if (this.options.signal?.aborted) throw new FileDaemonError("ABORTED", "aborted before the command was placed; it did not run");
  }
}
