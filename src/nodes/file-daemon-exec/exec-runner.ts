import { FileDaemonError, isErrorCode } from "../../protocol/errors";
import { CommandFailedError, submitCommand, type CommandResult } from "../../client/submit";
import { CommandQueue } from "./command-queue";
import { pause } from "../../shared/pause";
import { timeoutMs } from "../../shared/settings";
import { NotAllowedError } from "../file-daemon/allowlist";
import { daemonProblemError, healthStatus, type DaemonConnection, type DaemonHealth } from "../file-daemon/daemon-connection";
import type { CommandEnd, Sender } from "../file-daemon/daemon-activity";
import { commandFor } from "./exec-command";
import { messageOptions, parseEnvSetting, type MessageOptions } from "./exec-options";
import type { OutputLine } from "../../client/stream-follower";
import { PayloadCommandForbiddenError, killSignal } from "./exec-policy";
import { applyResult, errorCode, failureStatus, isNonZero, NonZeroExitError, resultStatus, returnCode } from "./exec-result";
import type { DoneFunction, Node, NodeDef, NodeMessage, NodeStatus, SendFunction, Translate } from "../node-red-types";

/** A `file-daemon-exec` node as the editor saves it. */
export interface ExecDef extends NodeDef {
  readonly daemon?: string;
  readonly command?: string;
  readonly appendPayload?: boolean;
  /** Seconds, 0 = none; msg.timeout overrides it. */
  readonly timeout?: number | string;
  readonly capture?: boolean;
  readonly failOnNonZero?: boolean;
  /** Each line of output goes out on a second output as it comes. */
  readonly stream?: boolean;
  /** Empty: the daemon's. */
  readonly cwd?: string;
  /** `NAME=value` lines. */
  readonly env?: string;
}

/** What the runtime around an exec node decides: its language, log level and the admin's policy. */
export interface ExecEnvironment {
  readonly t: Translate;
  /** Node-RED runs with `verbose`: every submitted command line is logged. */
  readonly verbose: boolean;
  /** False when settings.js forbids msg.payload as the whole command. */
  readonly payloadCommandAllowed: boolean;
}

/** Node-RED gives a closing node 15 s; running commands are killed well within that. */
const CLOSE_WAIT_MS = 12_000;
const CLOSED = "the node was closed (redeploy or Node-RED stopping)";

/**
 * What one exec node does with its messages: build the command, queue it, submit it through
 * the daemon's files (never a process of its own), and report the outcome on msg and status.
 */
export class ExecRunner {
  private readonly queue: CommandQueue<CommandResult>;
  private readonly unsubscribe: () => void;
  /** Stops reporting this node's queue to the sidebar. */
  private readonly stopReporting: () => void;
  private readonly sender: Sender;
  /** One per submission in progress: aborted with a signal name by msg.kill. */
  private readonly submissions = new Set<AbortController>();
  /** What the status shows when nothing runs or waits: the last outcome or daemon change. */
  private idleStatus: NodeStatus;
  private closing = false;
  /** The node's Environment setting, parsed once: or why it cannot be used. */
  private readonly nodeEnv: Readonly<Record<string, string>> | FileDaemonError;

  constructor(
    private readonly node: Node,
    private readonly def: ExecDef,
    private readonly daemon: DaemonConnection,
    private readonly env: ExecEnvironment,
  ) {
    this.queue = new CommandQueue<CommandResult>(daemon.health.channels, undefined, () => {
      this.showStatus();
      daemon.activity.queueChanged();
    });
    this.idleStatus = healthStatus(daemon.health, env.t);
    this.unsubscribe = daemon.subscribe((health) => this.onHealth(health));
    this.sender = { id: node.id, name: node.name ?? "" };
    this.stopReporting = daemon.activity.addQueue(node.id, () => ({ node: this.sender, waiting: this.queue.waitingCount, running: this.queue.runningCount }));
    this.nodeEnv = envSetting(def.env);
    if (this.nodeEnv instanceof FileDaemonError) node.error(`${this.nodeEnv.message}; every message fails until it is fixed`);
    this.showStatus();
  }

  handle(msg: NodeMessage, send: SendFunction, done: DoneFunction): void {
    if (msg.kill) {
      // Like the core exec node: msg.kill stops what runs; it is not a command itself.
      this.kill(msg, done);
      return;
    }
    let command: string | null = null;
    let timeout: number;
    let extras: MessageOptions;
    try {
      const fixed = this.def.command ?? "";
      if (fixed.trim() === "" && !this.env.payloadCommandAllowed) throw new PayloadCommandForbiddenError();
      command = commandFor({ command: fixed, appendPayload: this.def.appendPayload === true }, msg.payload);
      this.checkAllowed(command, msg);
      timeout = this.timeoutFor(msg);
      if (this.nodeEnv instanceof FileDaemonError) throw this.nodeEnv;
      extras = messageOptions(this.def, this.nodeEnv, msg);
    } catch (err) {
      this.daemon.activity.refused(this.sender, command, endOf(this.fail(msg, err, done)));
      return;
    }
    const capture = this.def.capture === true;
    const { commandsFile, resultsFile, sleepTime } = this.daemon;
    const submitted = command;
    /** Records the end for the sidebar: set once the command is handed to the daemon. */
    let ended: ((end: CommandEnd) => void) | null = null;
    this.queue
      .push((queueSignal) => {
        // Looked at as the command goes out, not when it came in: a directory fixed meanwhile is used.
        const refused = this.daemon.refusal;
        if (refused !== null) return Promise.reject(refused);
        // The queue aborts with an Error (node closed: SIGTERM); msg.kill with a signal name.
        const submission = new AbortController();
        const forward = () => submission.abort(queueSignal.reason);
        if (queueSignal.aborted) forward();
        else queueSignal.addEventListener("abort", forward, { once: true });
        this.submissions.add(submission);
        ended = this.daemon.activity.started(this.sender, submitted, this.def.stream === true, {
          kill: (signal) => {
            // Ended (its result is being reported) or asked already: nothing is sent.
            if (submission.signal.aborted || !this.submissions.has(submission)) return false;
            submission.abort(signal);
            return true;
          },
          killRequested: () => (submission.signal.aborted ? abortSignalName(submission.signal.reason) : null),
        });
        if (this.env.verbose) this.node.log(`running: ${submitted}`);
        const options = { ...extras, timeout, capture, signal: submission.signal, daemonWait: this.daemon.daemonWaitSeconds(), ...(this.def.stream === true ? { onLine: (line: OutputLine) => send([null, lineMessage(line)]) } : {}) };
        return submitCommand(submitted, commandsFile, resultsFile, sleepTime, options).finally(() => {
          this.submissions.delete(submission);
          queueSignal.removeEventListener("abort", forward);
        });
      })
      .then(
        (result) => {
          // What the sidebar records is what msg and the status say: the error the message ended
          // with. Recorded in any case, so no command stays listed as running.
          let failed: Error | null = null;
          try {
            failed = this.succeed(msg, result, send, done);
          } finally {
            ended?.(endOf(failed, result));
          }
        },
        (err: unknown) => {
          let failed = err instanceof Error ? err : new Error(String(err));
          try {
            failed = this.fail(msg, err, done);
          } finally {
            if (ended !== null) ended(endOf(failed, err instanceof CommandFailedError ? err.result : null));
            else this.daemon.activity.refused(this.sender, submitted, endOf(failed));
          }
        },
      );
  }

  /**
   * msg.kill: every command this node has at the daemon gets the signal (its whole process
   * group); one not started yet is withdrawn. Messages waiting in the node's queue still run.
   */
  private kill(msg: NodeMessage, done: DoneFunction): void {
    let signal: string;
    try {
      signal = killSignal(msg.kill);
    } catch (err) {
      this.fail(msg, err, done);
      return;
    }
    // The client reads the abort's reason as the signal to send (SubmitOptions.signal).
    for (const submission of this.submissions) submission.abort(signal);
    if (this.submissions.size > 0) this.daemon.activity.queueChanged(); // the sidebar shows "kill requested"
    done();
  }

  /** Refuses waiting messages, kills running commands, and resolves once they ended (bounded). */
  async close(): Promise<void> {
    this.closing = true;
    this.unsubscribe();
    this.stopReporting();
    const stopped = new AbortController();
    await Promise.race([this.queue.close(CLOSED), pause(CLOSE_WAIT_MS, stopped.signal)]);
    stopped.abort();
  }

  /** Sends the result on; returns the error the message ended with instead (failOnNonZero), or null. */
  private succeed(msg: NodeMessage, result: CommandResult, send: SendFunction, done: DoneFunction): Error | null {
    const capture = this.def.capture === true;
    if (this.def.failOnNonZero === true && isNonZero(result)) return this.fail(msg, new NonZeroExitError(result), done, result);
    applyResult(msg, result, capture);
    if (this.def.stream === true) applyStreamCounts(msg, result);
    this.idleStatus = resultStatus(result, this.env.t);
    this.showStatus();
    send(msg);
    done();
    return null;
  }

  /** Ends the message with an error a Catch node sees; msg.rc (and output) when it ran. Returns that error. */
  private fail(msg: NodeMessage, err: unknown, done: DoneFunction, ran: CommandResult | null = null): Error {
    const result = ran ?? (err instanceof CommandFailedError ? err.result : null);
    if (result !== null) {
      msg.rc = returnCode(result);
      if (this.def.stream === true) applyStreamCounts(msg, result);
      if (this.def.capture === true) {
        msg.stdout = result.stdout?.toString("utf8") ?? "";
        msg.stderr = result.stderr?.toString("utf8") ?? "";
      }
    }
    // No daemon because its directory or files need fixing: the message says why, and how.
    const problem = daemonProblemError(this.daemon.health, err);
    const error = this.closing ? closedError(err) : (problem ?? (err instanceof Error ? err : new Error(String(err))));
    this.idleStatus = problem !== null ? healthStatus(this.daemon.health, this.env.t) : failureStatus(error, result, this.env.t);
    this.showStatus();
    done(error);
    return error;
  }

  /**
   * Refuses a command the config node's allowlist does not name, before anything is queued or
   * written. In append mode the node's own command is checked: the payload is one quoted argument.
   */
  private checkAllowed(command: string, msg: NodeMessage): void {
    const allowlist = this.daemon.allowlist;
    if (allowlist === null) return;
    // A message's own environment or directory could change what an allowed command runs (PATH, LD_PRELOAD, ./script).
    for (const key of ["env", "cwd"] as const) {
      if (msg[key] !== undefined && msg[key] !== null) {
        throw new FileDaemonError("NOT_ALLOWED", `msg.${key} is not allowed with the config node's allowlist: it could change what an allowed command runs; set the node's own ${key === "env" ? "Environment" : "Working dir"} instead. Nothing was run`);
      }
    }
    const fixed = (this.def.command ?? "").trim();
    const appended = fixed !== "" && this.def.appendPayload === true;
    const checked = appended ? fixed : command;
    if (!allowlist.allows(checked)) throw new NotAllowedError(checked, appended ? "the node's command" : "the command");
  }

  private timeoutFor(msg: NodeMessage): number {
    if (msg.timeout !== undefined && msg.timeout !== null) return timeoutMs(msg.timeout, "msg.timeout") / 1000;
    return timeoutMs(this.def.timeout, "the node's timeout") / 1000;
  }

  private onHealth(health: DaemonHealth): void {
    this.queue.setConcurrency(Math.max(1, health.channels));
    this.idleStatus = healthStatus(health, this.env.t);
    this.showStatus();
  }

  private showStatus(): void {
    if (this.closing) return;
    const { waitingCount, runningCount } = this.queue;
    const { t } = this.env;
    if (waitingCount >= this.queue.maxWaiting) this.node.status({ fill: "red", shape: "dot", text: t("file-daemon-exec.status.queueFull") });
    else if (waitingCount > 0) this.node.status({ fill: "blue", shape: "dot", text: t("file-daemon-exec.status.queued", { count: String(waitingCount) }) });
    else if (runningCount > 0) this.node.status({ fill: "blue", shape: "dot", text: t("file-daemon-exec.status.running") });
    else this.node.status(this.idleStatus);
  }
}

/** The error of a message ended by the node's close: says so, keeps the code, wraps the cause. */
function closedError(err: unknown): Error {
  const cause = err instanceof Error ? err : new Error(String(err));
  if (cause.message.startsWith(CLOSED)) return cause;
  const code = errorCode(cause);
  const message = code === "KILLED" ? `${CLOSED}; its running command was killed` : `${CLOSED}: ${cause.message}`;
  return new FileDaemonError(isErrorCode(code) ? code : "QUEUE_CLOSED", message, { cause });
}

function envSetting(text: string | undefined): Readonly<Record<string, string>> | FileDaemonError {
  try {
    return parseEnvSetting(text);
  } catch (err) {
    return err instanceof FileDaemonError ? err : new FileDaemonError("BAD_OPTION", String(err));
  }
}

/** How a message ended, for the sidebar's recent results: the command's outcome and, for a failure, its error. */
function endOf(err: Error | null, result: CommandResult | null = null): CommandEnd {
  const outcome = { code: result?.code ?? null, signal: result?.signal ?? null, ...(result !== null && result.durationMs > 0 ? { ranMs: result.durationMs } : {}) };
  if (err === null) return { ...outcome, error: null, message: null };
  return { ...outcome, error: errorCode(err), message: err.message };
}

/** The signal a submission's abort asked for: msg.kill and Kill give its name, a closing queue an Error (SIGTERM). */
function abortSignalName(reason: unknown): string {
  return typeof reason === "string" ? reason : "SIGTERM";
}

/** A line of output as a message of the second output. */
function lineMessage(line: OutputLine): NodeMessage {
  return { payload: line.text, topic: line.stream, seq: line.seq, id: line.id, partial: line.partial, ...(line.missed > 0 ? { missed: line.missed } : {}) };
}

/** msg.streamed (lines the command printed) and msg.missed (lines of them not sent, because the node fell behind). */
function applyStreamCounts(msg: NodeMessage, result: CommandResult): void {
  msg.streamed = result.streamed ?? 0;
  msg.missed = result.missed ?? 0;
}
