import { promises as fsp } from "node:fs";
import { peek, withChannelLocked, type LockedChannel } from "../protocol/channel-state";
import { validateCommand } from "../protocol/command-line";
import { decodeCommands, type CommandRecord } from "../protocol/command-record";
import { writeFileAtomic } from "../protocol/atomic-write";
import { FileDaemonError, fromFsError } from "../protocol/errors";
import { isOwnerGone } from "../protocol/liveness";
import { release, tryLock, type LockOptions } from "../protocol/lock";
import type { ChannelFiles } from "../protocol/paths";
import { decodeResults, encodeDone, encodeRunning, type DecodedResults, type DoneRecord, type Owner } from "../protocol/result-record";
import type { Logger } from "./log";
import { maxChannelFileBytes, unreadableFileReason, unsafeCommandsReason } from "./file-safety";
import { runCommand, type Outcome, type RunOptions, type RunningCommand } from "./run-command";

export interface ChannelContext {
  readonly lock: LockOptions;
  readonly fileMode: number;
  readonly run: Omit<RunOptions, "timeoutMs" | "capture">;
  /** A finished result nobody collects is cleared after this long (daemon's own clock). */
  readonly resultTtlMs: number;
  /** Tells this daemon's running records from those of an earlier daemon (pids repeat). */
  readonly runToken: string;
  readonly log: Logger;
  /** Wakes the daemon's loop (a command finished). */
  readonly wake: () => void;
}

interface Active {
  readonly owner: Owner;
  readonly command: RunningCommand;
}

/** The daemon's side of one channel: take a pending command, run it, publish its result. */
export class DaemonChannel {
  private active: Active | null = null;
  /** A finished result not yet written (the results file was locked or unwritable). */
  private unwritten: { owner: Owner; content: string } | null = null;
  private uncollected: { key: string; since: number } | null = null;

  constructor(
    readonly files: ChannelFiles,
    private readonly ctx: ChannelContext,
  ) {}

  get busy(): boolean {
    return this.active !== null || this.unwritten !== null;
  }

  /** One step of the channel's state machine, on every wake; true when a lock was busy. */
  async service(acceptNew: boolean): Promise<boolean> {
    if (this.unwritten !== null) await this.publishResult();
    if (this.active !== null) {
      await this.checkKillRequest();
      return false;
    }
    if (this.unwritten !== null) return true;
    const replaced = await this.replaceUnreadable();
    if (replaced !== "ok") return replaced === "busy";
    const commands = decodeCommands(await peek(this.files.commands));
    if (commands.kind === "empty" || !acceptNew) {
      await this.expireResult();
      return false;
    }
    const outcome = await withChannelLocked(this.files, this.ctx.lock, (state) => this.take(state), this.ctx.fileMode);
    if (outcome === "busy") return true;
    if (outcome !== null) this.start(outcome);
    return false;
  }

  /** Marks a running record left by a dead daemon as interrupted (at start-up). */
  async recover(): Promise<void> {
    await withChannelLocked(this.files, this.ctx.lock, async (state) => {
      if (state.results.kind !== "running" || state.results.run === this.ctx.runToken) return;
      const owner = state.results;
      this.ctx.log.error(`channel ${this.files.index}: command ${owner.id} was running when daemon ${owner.daemon} died; recorded as interrupted, not run again`);
      await state.writeResults(encodeDone(doneRecord(owner, interrupted(`the daemon (pid ${owner.daemon}) died while the command ran; it was not run again`))));
      if (state.commands.kind === "pending" && state.commands.record.id === owner.id) await state.writeCommands("");
    }, this.ctx.fileMode);
  }

  /** Stops the running command (daemon shutting down) and waits for its result to be written. */
  async finish(graceMs: number): Promise<void> {
    const active = this.active;
    if (active !== null) {
      const timer = setTimeout(() => active.command.kill("killed", "killed because the daemon was stopped"), graceMs);
      await active.command.finished;
      clearTimeout(timer);
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (let attempt = 0; this.unwritten !== null && attempt < 50; attempt++) {
      await this.publishResult().catch(() => undefined);
      if (this.unwritten !== null) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async take(state: LockedChannel): Promise<CommandRecord | null> {
    const { commands, results } = state;
    if (commands.kind === "empty") return null;
    if (results.kind !== "empty" && !(await this.clearIfStale(state, results))) return null;
    if (commands.kind === "unreadable") {
      await state.writeResults(encodeDone(doneRecord(commands, refused(`${commands.reason}; the command was not run`))));
      await state.writeCommands("");
      this.ctx.log.error(`channel ${this.files.index}: refused ${commands.id}: ${commands.reason}`);
      return null;
    }
    const record = commands.record;
    const reason = (await unsafeCommandsReason(this.files.commands, this.ctx.fileMode)) ?? invalidReason(record.command);
    if (reason !== null) {
      await state.writeResults(encodeDone(doneRecord(record, refused(`${reason}; the command was not run`))));
      await state.writeCommands("");
      this.ctx.log.error(`channel ${this.files.index}: refused ${record.id}: ${reason}`);
      return null;
    }
    // Running is recorded before the command leaves the commands file: a crash between the
    // two writes leaves both naming the same id, which recovery reads as "started".
    await state.writeResults(encodeRunning({ id: record.id, pid: record.pid, pidns: record.pidns, daemon: process.pid, run: this.ctx.runToken }));
    await state.writeCommands("");
    return record;
  }

  private start(record: CommandRecord): void {
    const owner: Owner = { id: record.id, pid: record.pid, pidns: record.pidns };
    const begin = runCommand(record.command, { ...this.ctx.run, timeoutMs: record.timeoutMs, capture: record.capture });
    const placeholder: Active = { owner, command: pendingStart(begin) };
    this.active = placeholder;
    void begin
      .then((command) => {
        this.active = { owner, command };
        return command.finished;
      })
      .catch((err: unknown): Outcome => failed(`the shell could not be started: ${String(err)}`))
      .then((outcome) => {
        this.active = null;
        this.unwritten = { owner, content: encodeDone(doneRecord(owner, outcome)) };
        this.ctx.wake();
      });
  }

  /**
   * A channel file that is a symbolic link, a FIFO, a device or huge was put there by a third
   * party (submitters replace files by rename): it is replaced by an empty file under both
   * locks without being read, so it can neither hang the daemon, fill its memory, nor lead it
   * to a file elsewhere. "busy" when a lock was held, "replaced" when something was replaced.
   */
  private async replaceUnreadable(): Promise<"ok" | "busy" | "replaced"> {
    const { commands, results } = this.files;
    const maxBytes = maxChannelFileBytes(this.ctx.run.captureLimit);
    if (unreadableFileReason(commands, maxBytes) === null && unreadableFileReason(results, maxBytes) === null) return "ok";
    const releaseCommands = await tryLock(commands, this.ctx.lock);
    if (releaseCommands === null) return "busy";
    try {
      const releaseResults = await tryLock(results, this.ctx.lock);
      if (releaseResults === null) return "busy";
      try {
        for (const file of [commands, results]) {
          const reason = unreadableFileReason(file, maxBytes);
          if (reason === null) continue;
          try {
            await writeFileAtomic(file, "", this.ctx.fileMode);
          } catch (err) {
            throw fromFsError(err, file, "cannot replace");
          }
          this.ctx.log.error(`channel ${this.files.index}: ${reason}; replaced it with an empty file without reading it (nothing was run)`);
        }
      } finally {
        await release(releaseResults);
      }
    } finally {
      await release(releaseCommands);
    }
    return "replaced";
  }

  private async publishResult(): Promise<void> {
    const pending = this.unwritten;
    if (pending === null) return;
    const written = await withChannelLocked(this.files, this.ctx.lock, async (state) => {
      const results = state.results;
      if (results.kind === "running" && results.id === pending.owner.id) {
        await state.writeResults(pending.content);
      } else {
        this.ctx.log.error(`channel ${this.files.index}: the submitter of ${pending.owner.id} stopped waiting; its result was dropped`);
      }
      return true;
    }, this.ctx.fileMode);
    if (written === true) this.unwritten = null;
  }

  private async checkKillRequest(): Promise<void> {
    let request: string;
    try {
      request = (await fsp.readFile(this.files.kill, "utf8")).trim();
    } catch {
      return;
    }
    await fsp.rm(this.files.kill, { force: true });
    const active = this.active;
    if (active !== null && request === active.owner.id) {
      this.ctx.log.info(`channel ${this.files.index}: killing ${request} on request`);
      active.command.kill("killed", "killed on request");
    }
  }

  /** Clears a result nobody will collect. Called without locks; decides under them. */
  private async expireResult(): Promise<void> {
    const results = decodeResults(await peek(this.files.results));
    if (results.kind === "empty") {
      this.uncollected = null;
      return;
    }
    if (results.kind === "running" && results.run === this.ctx.runToken) return;
    if (!this.isStale(results)) return;
    await withChannelLocked(this.files, this.ctx.lock, async (state) => {
      if (state.results.kind !== "empty") await this.clearIfStale(state, state.results);
    }, this.ctx.fileMode);
  }

  private async clearIfStale(state: LockedChannel, results: DecodedResults): Promise<boolean> {
    if (results.kind === "running" && results.run !== this.ctx.runToken) {
      await state.writeResults(encodeDone(doneRecord(results, interrupted(`the daemon (pid ${results.daemon}) died while the command ran`))));
      return false;
    }
    if (!this.isStale(results)) return false;
    const what = results.kind === "garbage" ? `unreadable content ${JSON.stringify(results.text)}` : "a result nobody collected";
    this.ctx.log.info(`channel ${this.files.index}: cleared ${what} from ${this.files.results}`);
    await state.writeResults("");
    this.uncollected = null;
    return true;
  }

  private isStale(results: DecodedResults): boolean {
    if (results.kind === "empty") return true;
    if (results.kind === "garbage") return true;
    if (results.kind === "running") return false;
    if (results.kind === "done" && isOwnerGone(results)) return true;
    const key = results.kind === "done" ? results.id : `foreign:${results.code}`;
    const now = performance.now();
    if (this.uncollected?.key !== key) this.uncollected = { key, since: now };
    return now - this.uncollected.since >= this.ctx.resultTtlMs;
  }
}

function invalidReason(command: string): string | null {
  try {
    validateCommand(command);
    return null;
  } catch (err) {
    return err instanceof FileDaemonError ? err.message : String(err);
  }
}

function pendingStart(begin: Promise<RunningCommand>): RunningCommand {
  return {
    pgid: null,
    finished: begin.then((command) => command.finished),
    kill: (reason, message) => void begin.then((command) => command.kill(reason, message)),
  };
}

const noOutput = { stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 };

function interrupted(message: string): Outcome {
  return { status: "interrupted", code: null, signal: null, message, ...noOutput };
}

function refused(message: string): Outcome {
  return { status: "refused", code: null, signal: null, message, ...noOutput };
}

function failed(message: string): Outcome {
  return { status: "failed", code: null, signal: null, message, ...noOutput };
}

function doneRecord(owner: Owner, outcome: Outcome): Omit<DoneRecord, "kind"> {
  return { id: owner.id, pid: owner.pid, pidns: owner.pidns, ...outcome };
}
