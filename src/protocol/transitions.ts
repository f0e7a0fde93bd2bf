import { encodeCommandRecord, type CommandRecord, type DecodedCommands } from "./command-record";
import { encodeOutcome, encodeRunning, outcomeWithoutProcess, type DecodedResults, type DoneRecord, type Owner } from "./result-record";
import { anchorOf, appendTaken, coversSince, newTrace, wasTaken, type TakenTrace, type TraceAnchor } from "./taken-trace";

/**
 * The transitions of a channel (PROTOCOL.md §5–§7), each a pure function of what was read
 * under both locks. They decide; the daemon and the submitters only perform the writes (in
 * the order trace, results, commands) and then act. Each function has the name of its table
 * in PROTOCOL.md.
 */

/** A channel as read under both locks (commands, then results, then the trace). */
export interface ChannelView {
  readonly commands: DecodedCommands;
  readonly results: DecodedResults;
  readonly trace: TakenTrace | null;
}

/** What to write, performed in this order: trace, results, commands (PROTOCOL.md §5, "take"). */
export interface Writes {
  readonly trace?: TakenTrace;
  readonly results?: string;
  readonly commands?: string;
}

// ---------------------------------------------------------------- the daemon

/** Recover (§7): a `running` record of another daemon start is a command whose daemon died. */
export function recover(view: ChannelView, runToken: string): { readonly writes: Writes; readonly log: string } | null {
  const results = view.results;
  if (results.kind !== "running" || results.run === runToken) return null;
  const outcome = outcomeWithoutProcess("interrupted", `the daemon (pid ${results.daemon}) died while the command ran; its outcome is unknown and it was not run again`);
  const pendingCopy = view.commands.kind === "pending" && view.commands.record.id === results.id;
  return {
    writes: { results: encodeOutcome(results, outcome), ...(pendingCopy ? { commands: "" } : {}) },
    log: `command ${results.id} was running when daemon ${results.daemon} died; recorded as interrupted, not run again`,
  };
}

export interface TakeContext {
  readonly runToken: string;
  readonly daemonPid: number;
  /** Whether the results file's content may be cleared (§7, expiry): decided by the daemon's clock. */
  readonly mayClear: (results: DecodedResults) => boolean;
  /** Why line 1 must not run (§4 command checks, §8 unsafe files), or null. */
  readonly refusal: (record: CommandRecord) => string | null;
}

export type TakeDecision =
  /** Nothing to do now (nothing pending, or a result still to be collected). */
  | { readonly kind: "idle"; readonly writes: Writes; readonly log: string | null }
  /** The command is not run; the writes answer or remove it. */
  | { readonly kind: "not-run"; readonly writes: Writes; readonly log: string }
  /** Perform the writes, confirm both locks are still ours, then start `record`. */
  | { readonly kind: "start"; readonly writes: Writes; readonly record: CommandRecord };

/**
 * Take (§5). A pending command is started only when the results file is free and its id was
 * never taken before; the trace entry is written first, then `running`, then the commands file
 * is emptied, so every crash point leaves a trace that the command may have started.
 */
export function take(view: ChannelView, ctx: TakeContext): TakeDecision {
  const recovered = recover(view, ctx.runToken);
  if (recovered !== null) return { kind: "idle", writes: recovered.writes, log: recovered.log };
  const { commands, results } = view;
  if (commands.kind === "empty") return { kind: "idle", writes: {}, log: null };
  const clear: Writes = results.kind !== "empty" ? { results: "" } : {};
  if (results.kind !== "empty" && !ctx.mayClear(results)) return { kind: "idle", writes: {}, log: null };
  if (commands.kind === "unattributable") {
    return { kind: "not-run", writes: { ...clear, commands: "" }, log: `removed a command nobody can be answered for: ${commands.reason}; it was not run` };
  }
  if (commands.kind === "refusable") {
    return refuse(commands.sender, commands.reason);
  }
  const record = commands.record;
  if (wasTaken(view.trace, record.id)) {
    const outcome = outcomeWithoutProcess("interrupted", "this command was taken before (a second copy, or a take cut short); it is not run again");
    return { kind: "not-run", writes: { results: encodeOutcome(record, outcome), commands: "" }, log: `command ${record.id} was taken before; not run again` };
  }
  const refusal = ctx.refusal(record);
  if (refusal !== null) return refuse(record, refusal);
  return {
    kind: "start",
    record,
    writes: {
      trace: appendTaken(view.trace ?? newTrace(), record.id),
      results: encodeRunning({ id: record.id, pid: record.pid, pidns: record.pidns, daemon: ctx.daemonPid, run: ctx.runToken }),
      commands: "",
    },
  };
}

function refuse(sender: Owner, reason: string): TakeDecision {
  const outcome = outcomeWithoutProcess("refused", `${reason}; the command was not run`);
  return { kind: "not-run", writes: { results: encodeOutcome(sender, outcome), commands: "" }, log: `refused ${sender.id}: ${reason}` };
}

/**
 * Publish (§5): the result replaces its own `running` record, and nothing else. When that
 * record is gone (the submitter gave up after the daemon seemed dead, or the folder was
 * emptied), nobody waits for the result any more: it is dropped and logged.
 */
export function publish(view: ChannelView, owner: Owner, result: string): { readonly writes: Writes; readonly log: string | null } {
  const results = view.results;
  if (results.kind === "running" && results.id === owner.id) return { writes: { results: result }, log: null };
  return { writes: {}, log: `the running record of ${owner.id} was gone when it ended (its submitter stopped waiting, or the files were removed); its result was dropped` };
}

// ---------------------------------------------------------------- the submitter

export type PlaceDecision =
  | { readonly kind: "skip" }
  | { readonly kind: "place"; readonly writes: Writes; readonly anchor: TraceAnchor | null };

/**
 * Place (§5): into a free commands slot over an idle results file, or over a `done` record
 * whose submitter is gone (it will never be collected). The anchor is where the trace stood:
 * later it tells whether the daemon may have taken the command.
 */
export function place(view: ChannelView, record: CommandRecord, isOwnerGone: (done: DoneRecord) => boolean): PlaceDecision {
  if (view.commands.kind !== "empty") return { kind: "skip" };
  const results = view.results;
  if (results.kind !== "empty" && !(results.kind === "done" && isOwnerGone(results))) return { kind: "skip" };
  return {
    kind: "place",
    anchor: anchorOf(view.trace),
    writes: { ...(results.kind === "empty" ? {} : { results: "" }), commands: encodeCommandRecord(record) },
  };
}

export interface LookContext {
  readonly id: string;
  /** Where the trace stood when the command was placed. */
  readonly anchor: TraceAnchor | null;
  /** Whether this submitter has seen its command running. */
  readonly seenRunning: boolean;
  readonly aborted: boolean;
  /** A daemon is alive now (asked only when it matters). */
  readonly daemonAlive: () => boolean;
  /** A daemon is alive, or has been gone for less than the caller allows: a pending command waits that long for one. */
  readonly daemonExpected: () => boolean;
}

export type LookDecision =
  | { readonly kind: "collect"; readonly writes: Writes; readonly done: DoneRecord }
  | { readonly kind: "wait"; readonly state: "pending" | "running" }
  /** Withdrawn (writes), confirm the locks, then report it did not run. */
  | { readonly kind: "withdraw"; readonly writes: Writes; readonly because: "aborted" | "no-daemon" }
  | { readonly kind: "daemon-died"; readonly writes: Writes }
  /** Provably never taken (the trace covers the time since placing and lacks the id): place it again. */
  | { readonly kind: "vanished" }
  /** Gone, and it may have run: never placed again. */
  | { readonly kind: "unknown"; readonly taken: boolean };

/**
 * Wait and collect (§5): what a waiting submitter does with what it read under both locks.
 * A command that is in neither file is placed again only when the trace proves the daemon
 * never took it; otherwise its outcome is unknown.
 */
export function look(view: ChannelView, ctx: LookContext): LookDecision {
  const { commands, results } = view;
  const pendingCopy = idInCommands(commands) === ctx.id;
  if ((results.kind === "done" || results.kind === "running") && results.id === ctx.id) {
    if (results.kind === "done") return { kind: "collect", done: results, writes: { results: "", ...(pendingCopy ? { commands: "" } : {}) } };
    if (ctx.daemonAlive()) return { kind: "wait", state: "running" };
    return { kind: "daemon-died", writes: { results: "" } };
  }
  const withdrawal = withdraw(view, ctx.id);
  if (withdrawal !== null) {
    if (ctx.aborted) return { kind: "withdraw", writes: withdrawal, because: "aborted" };
    if (ctx.daemonExpected()) return { kind: "wait", state: "pending" };
    return { kind: "withdraw", writes: withdrawal, because: "no-daemon" };
  }
  const taken = wasTaken(view.trace, ctx.id);
  if (!taken && !ctx.seenRunning && coversSince(view.trace, ctx.anchor)) return { kind: "vanished" };
  return { kind: "unknown", taken };
}

/** Withdraw (§6): a submitter giving up on a command that has not started (also one the daemon will refuse). */
export function withdraw(view: ChannelView, id: string): Writes | null {
  return idInCommands(view.commands) === id ? { commands: "" } : null;
}

/** The id the commands file names, whether the daemon will run it or refuse it. */
function idInCommands(commands: DecodedCommands): string | null {
  if (commands.kind === "pending") return commands.record.id;
  if (commands.kind === "refusable") return commands.sender.id;
  return null;
}

/**
 * Expire (§7): a result nobody will collect is cleared. `mayClear` holds the daemon's rules
 * (a gone submitter, garbage, or uncollected for the expiry time by its own monotonic clock).
 */
export function expire(view: ChannelView, runToken: string, mayClear: (results: DecodedResults) => boolean): Writes | null {
  const results = view.results;
  if (results.kind === "empty" || (results.kind === "running" && results.run === runToken) || !mayClear(results)) return null;
  return { results: "" };
}
