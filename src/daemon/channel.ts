import fs from "node:fs";
import { applyWrites, peekSync, withBothLocks, withChannelLocked, type LockAttempt, type LockedChannel } from "../protocol/io/channel-state";
import { validateCommand } from "../protocol/command-line";
import { decodeCommands, type CommandRecord } from "../protocol/command-record";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import { FileDaemonError, fromFsError } from "../protocol/errors";
import { isOwnerGone } from "../protocol/io/liveness";
import type { LockOptions } from "../protocol/io/lock";
import type { ChannelFiles } from "../protocol/paths";
import { decodeResults, encodeOutcome, outcomeWithoutProcess, type DecodedResults, type Outcome, type Owner } from "../protocol/result-record";
import { decodeKillRequest } from "../protocol/kill-request";
import { newTrace } from "../protocol/taken-trace";
import { expire, publish, recover, take } from "../protocol/transitions";
import type { Logger } from "../shared/log";
import type { AllowPolicy } from "./allow-policy";
import { unreadableFileReason, unsafeCommandsReason } from "./file-safety";
import { maxChannelFileBytes } from "../protocol/limits";
import { OutputStream, removeStreamFiles } from "./output-stream";
import { runCommand, type RunOptions, type RunningCommand } from "./run-command";
import type { WarmShells } from "./warm-shells";

export interface ChannelContext {
  readonly lock: LockOptions;
  readonly fileMode: number;
  /** The daemon's --allow policy, or null: every valid command may run. */
  readonly policy: AllowPolicy | null;
  readonly run: RunOptions;
  /** A finished result nobody collects is cleared after this long (daemon's own clock). */
  readonly resultTtlMs: number;
  /** Tells this daemon's running records from those of an earlier daemon (pids repeat). */
  readonly runToken: string;
  readonly log: Logger;
  /** Wakes the daemon's loop (a command finished). */
  readonly wake: () => void;
  /** The daemon's own shells started ahead of commands. */
  readonly warmShells: WarmShells;
}

interface Active {
  readonly owner: Owner;
  readonly command: RunningCommand;
}

/** The daemon's side of one channel: schedules the transitions of protocol/transitions.ts and runs what *take* starts. */
export class DaemonChannel {
  private active: Active | null = null;
  /** A finished result not yet written (the results file was locked or unwritable). */
  private unwritten: { owner: Owner; content: string } | null = null;
  private uncollected: { key: string; since: number } | null = null;
  /** Recovery (§7) has been done for this channel: retried on every wake until its locks are free. */
  private recovered = false;
  /** A stream file may be there (one that could not be removed, or left by a follower that never collected). */
  private mayHaveStream = true;

  constructor(
    readonly files: ChannelFiles,
    private readonly ctx: ChannelContext,
  ) {}

  get busy(): boolean {
    return this.active !== null || this.unwritten !== null;
  }

  /** One step of the channel's state machine, on every wake; true when a lock was busy. */
  service(acceptNew: boolean): boolean {
    if (this.unwritten !== null) this.publishResult();
    if (this.active !== null) {
      this.checkKillRequest();
      return false;
    }
    if (this.unwritten !== null) return true;
    const replaced = this.replaceUnreadable();
    if (replaced !== "ok") return replaced === "locks-busy";
    if (!this.recovered && !this.recoverNow()) return true;
    const commands = decodeCommands(peekSync(this.files.commands));
    if (commands.kind === "empty" || !acceptNew) {
      this.expireResult();
      return false;
    }
    const attempt = this.locked((state) => {
      const decided = take(state, { runToken: this.ctx.runToken, daemonPid: process.pid, mayClear: (results) => this.mayClear(results), refusal: (record) => this.refusal(record) });
      applyWrites(state, decided.writes);
      // Nothing read under a lock that was taken over may start a command (PROTOCOL.md §2).
      if (decided.kind === "start") state.confirmHeld();
      return decided;
    });
    if (!attempt.held) return true;
    const decision = attempt.value;
    if (decision.kind !== "start") {
      if (decision.log !== null) this.logAs(decision.kind === "not-run" ? "error" : "info", decision.log);
      return false;
    }
    this.uncollected = null;
    this.start(decision.record);
    return false;
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
    for (let attempt = 0; this.hasUnwritten() && attempt < 50; attempt++) {
      try {
        this.publishResult();
      } catch {
        // Retried below; the log has the reason from the loop.
      }
      if (this.hasUnwritten()) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** A call, not a property read: TypeScript would keep `unwritten !== null` across publishResult(), which clears it. */
  private hasUnwritten(): boolean {
    return this.unwritten !== null;
  }

  private locked<T>(fn: (state: LockedChannel) => T): LockAttempt<T> {
    return withChannelLocked(this.files, this.ctx.lock, fn, this.ctx.fileMode);
  }

  private logAs(level: "info" | "error", line: string): void {
    this.ctx.log[level](`channel ${this.files.index}: ${line}`);
  }

  /** Recover (§7) under both locks, and give the channel a trace if it has none; false while a lock is busy. */
  private recoverNow(): boolean {
    const attempt = this.locked((state) => {
      const recovered = recover(state, this.ctx.runToken);
      applyWrites(state, { ...(state.trace === null ? { trace: newTrace() } : {}), ...(recovered?.writes ?? {}) });
      return recovered;
    });
    if (!attempt.held) return false;
    if (attempt.value !== null) this.logAs("error", attempt.value.log);
    // A stream left by an earlier daemon has nobody to write it any more (its follower keeps what it holds open).
    this.removeLeftoverStream();
    this.recovered = true;
    return true;
  }

  private refusal(record: CommandRecord): string | null {
    return (
      unsafeCommandsReason(this.files.commands, this.ctx.fileMode) ??
      invalidReason(record.command) ??
      this.ctx.policy?.refusal(record) ??
      (record.cwd === null ? null : unusableCwdReason(record.cwd))
    );
  }

  private start(record: CommandRecord): void {
    const owner: Owner = { id: record.id, pid: record.pid, pidns: record.pidns };
    const output = this.startOutputStream(record);
    const wanted = { timeoutMs: record.timeoutMs, capture: record.capture, cwd: record.cwd, env: record.env, stdin: record.stdin, output };
    // Never rejects: a shell that cannot be started (execa failing to load, ENOMEM from fork)
    // becomes a `failed` result, and the daemon goes on.
    const begin = runCommand(record.command, this.ctx.run, wanted, this.ctx.warmShells).catch((err: unknown) => notStarted(err, output));
    this.active = { owner, command: whenStarted(begin) };
    void begin
      .then((command) => {
        this.active = { owner, command };
        return settled(command.finished);
      })
      .then((outcome) => {
        this.active = null;
        this.unwritten = { owner, content: encodeOutcome(owner, outcome) };
        this.ctx.wake();
      });
  }

  /** The stream file of a followed command, made before it starts; a command nobody follows finds none left over. */
  private startOutputStream(record: CommandRecord): OutputStream | null {
    if (!record.stream) {
      this.removeLeftoverStream();
      return null;
    }
    this.mayHaveStream = true;
    return OutputStream.create(this.files, record.id, this.ctx.fileMode, () => isOwnerGone(record), this.ctx.log);
  }

  /** Removes the channel's stream files if some may be there; one that cannot be removed is logged and tried again next time. */
  private removeLeftoverStream(): void {
    if (!this.mayHaveStream) return;
    const left = removeStreamFiles(this.files);
    if (left !== null) this.logAs("error", left);
    this.mayHaveStream = left !== null;
  }

  /**
   * A channel file that is a symbolic link, a FIFO, a device or huge was put there by a third
   * party (submitters replace files by rename): it is replaced by an empty file under both
   * locks without being read, so it can neither hang the daemon, fill its memory, nor lead it
   * to a file elsewhere. "locks-busy" when a lock was held, "replaced" when something was replaced.
   */
  private replaceUnreadable(): "ok" | "locks-busy" | "replaced" {
    const maxBytes = maxChannelFileBytes(this.ctx.run.captureLimit);
    const files = [this.files.commands, this.files.results, this.files.taken];
    if (files.every((file) => unreadableFileReason(file, maxBytes) === null)) return "ok";
    const attempt = withBothLocks(this.files, this.ctx.lock, (confirmHeld) => {
      for (const file of files) {
        const reason = unreadableFileReason(file, maxBytes);
        if (reason === null) continue;
        confirmHeld();
        try {
          writeFileAtomicSync(file, "", this.ctx.fileMode);
        } catch (err) {
          throw fromFsError(err, file, "cannot replace");
        }
        this.logAs("error", `${reason}; replaced it with an empty file without reading it (nothing was run)`);
      }
    });
    return attempt.held ? "replaced" : "locks-busy";
  }

  private publishResult(): void {
    const pending = this.unwritten;
    if (pending === null) return;
    const attempt = this.locked((state) => {
      const decided = publish(state, pending.owner, pending.content);
      applyWrites(state, decided.writes);
      return decided;
    });
    if (!attempt.held) return;
    this.unwritten = null;
    if (attempt.value.log !== null) this.logAs("error", attempt.value.log);
    // The fork for the next command's shell overlaps the submitter collecting this result.
    setImmediate(() => this.ctx.warmShells.refill(this.ctx.run));
  }

  private checkKillRequest(): void {
    // Usually there is none: existsSync answers without building an ENOENT error (~80 µs).
    if (!fs.existsSync(this.files.kill)) return;
    let content: string;
    try {
      content = fs.readFileSync(this.files.kill, "utf8");
    } catch {
      return;
    }
    fs.rmSync(this.files.kill, { force: true });
    const request = decodeKillRequest(content);
    const active = this.active;
    if (active !== null && request !== null && request.id === active.owner.id) {
      this.logAs("info", `killing ${request.id} on request (${request.signal})`);
      active.command.kill("killed", `killed on request (${request.signal})`, request.signal);
    }
  }

  /** Clears a result nobody will collect. Looks without locks; decides under them. */
  private expireResult(): void {
    const results = decodeResults(peekSync(this.files.results));
    if (results.kind === "empty") {
      this.uncollected = null;
      return;
    }
    if ((results.kind === "running" && results.run === this.ctx.runToken) || !this.mayClear(results)) return;
    this.locked((state) => {
      const writes = expire(state, this.ctx.runToken, (found) => this.mayClear(found));
      if (writes === null) return;
      applyWrites(state, writes);
      // Its follower is gone too: nobody will read the stream file.
      this.removeLeftoverStream();
      const what = state.results.kind === "garbage" ? `unreadable content ${JSON.stringify(state.results.text)}` : "a result nobody collected";
      this.logAs("info", `cleared ${what} from ${this.files.results}`);
      this.uncollected = null;
    });
  }

  /**
   * Whether the results file may be cleared: garbage at once; a result whose submitter is gone;
   * any result after waiting uncollected for the expiry time. Our own `running` record while no
   * command runs here is a take that was cut short: its command never started.
   */
  private mayClear(results: DecodedResults): boolean {
    if (results.kind === "empty" || results.kind === "garbage") return true;
    if (results.kind === "running") return results.run === this.ctx.runToken && this.active === null;
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

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A command whose shell could not be started: its outcome is `failed`, at once. */
function notStarted(err: unknown, output: OutputStream | null): RunningCommand {
  const outcome = { ...outcomeWithoutProcess("failed", `the shell could not be started: ${describe(err)}`), ...(output === null ? {} : { streamed: output.end() }) };
  return { pgid: null, finished: Promise.resolve(outcome), kill: () => undefined };
}

/** Why a command cannot start in `cwd` (it must be a directory the daemon's user can enter), or null. */
function unusableCwdReason(cwd: string): string | null {
  try {
    if (!fs.statSync(cwd).isDirectory()) return `the working directory ${cwd} is not a directory; give the path of a directory`;
    fs.accessSync(cwd, fs.constants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return `the working directory ${cwd} does not exist; create it or give another cwd`;
    if (code === "EACCES") return `the working directory ${cwd} cannot be entered by the daemon's user (permission denied)`;
    return `the working directory ${cwd} cannot be used: ${describe(err)}`;
  }
}

/** The outcome, or `failed` if collecting it went wrong: the daemon always publishes something. */
function settled(finished: Promise<Outcome>): Promise<Outcome> {
  return finished.catch((err: unknown) => outcomeWithoutProcess("failed", `the command's outcome could not be read: ${describe(err)}`));
}

/** Stands for the command while its shell is being started (a kill then waits for the start). */
function whenStarted(begin: Promise<RunningCommand>): RunningCommand {
  return {
    pgid: null,
    finished: begin.then((command) => settled(command.finished)),
    kill: (reason, message, signal) => void begin.then((command) => command.kill(reason, message, signal)),
  };
}
