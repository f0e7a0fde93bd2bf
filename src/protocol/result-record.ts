import { constants } from "node:os";
import { firstTwoLines, isBlank, isId, isPid, parseJsonLine } from "./command-line";

/** How a command ended (see PROTOCOL.md, "results file"). */
export type ResultStatus =
  | "exited" // the shell exited by itself: `code` is its exit status
  | "signaled" // the shell died of a signal nobody here sent
  | "timeout" // the daemon killed it after its timeout
  | "killed" // the daemon killed it on request, or because it was stopping
  | "interrupted" // a daemon died while it ran; what it did is unknown
  | "failed" // the shell could not be started
  | "refused"; // the daemon would not run line 1 (see `message`)

export interface Owner {
  readonly id: string;
  readonly pid: number | null;
  readonly pidns: string | null;
}

export interface RunningRecord extends Owner {
  readonly kind: "running";
  /** The daemon's pid, for people; `run` tells one daemon start from another. */
  readonly daemon: number;
  readonly run: string;
}

export interface DoneRecord extends Owner {
  readonly kind: "done";
  readonly status: ResultStatus;
  readonly code: number | null;
  readonly signal: string | null;
  readonly message: string | null;
  readonly stdout: Buffer | null;
  readonly stderr: Buffer | null;
  readonly stdoutTruncated: boolean;
  readonly stderrTruncated: boolean;
  readonly durationMs: number;
  /** Records written to the stream file, for a followed command (§5, "stream"); absent otherwise. */
  readonly streamed?: number;
}

/** How a command ended: a result record without its owner. */
export type Outcome = Omit<DoneRecord, "kind" | keyof Owner>;

/** An outcome with no process behind it (the command did not run, or what it did is unknown). */
export function outcomeWithoutProcess(status: "interrupted" | "refused" | "failed", message: string): Outcome {
  return { status, code: null, signal: null, message, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 };
}

export function encodeOutcome(owner: Owner, outcome: Outcome): string {
  return encodeDone({ id: owner.id, pid: owner.pid, pidns: owner.pidns, ...outcome });
}

export type DecodedResults =
  | { readonly kind: "empty" }
  | RunningRecord
  | DoneRecord
  /** A seed-style result: a return code on line 1 and nothing we can attribute. */
  | { readonly kind: "foreign"; readonly code: number }
  | { readonly kind: "garbage"; readonly text: string };

function isSignalName(name: string): name is NodeJS.Signals {
  return Object.hasOwn(constants.signals, name);
}

/** Line 1 for a legacy reader: the exit status as a shell's `$?` would show it, or -1. */
export function returnCodeLine(record: Pick<DoneRecord, "code" | "signal">): number {
  if (record.code !== null) return record.code;
  const number = record.signal !== null && isSignalName(record.signal) ? constants.signals[record.signal] : undefined;
  return number === undefined ? -1 : 128 + number;
}

export function encodeRunning(record: Omit<RunningRecord, "kind">): string {
  const meta = { v: 1, state: "running", id: record.id, pid: record.pid, pidns: record.pidns, daemon: record.daemon, run: record.run };
  return `\n${JSON.stringify(meta)}\n`;
}

export function encodeDone(record: Omit<DoneRecord, "kind">): string {
  const meta = {
    v: 1,
    state: "done",
    id: record.id,
    pid: record.pid,
    pidns: record.pidns,
    status: record.status,
    code: record.code,
    signal: record.signal,
    message: record.message,
    stdout: record.stdout?.toString("base64") ?? null,
    stderr: record.stderr?.toString("base64") ?? null,
    stdoutTruncated: record.stdoutTruncated,
    stderrTruncated: record.stderrTruncated,
    durationMs: record.durationMs,
    ...(record.streamed === undefined ? {} : { streamed: record.streamed }),
  };
  return `${returnCodeLine(record)}\n${JSON.stringify(meta)}\n`;
}

const STATUSES: readonly ResultStatus[] = ["exited", "signaled", "timeout", "killed", "interrupted", "failed", "refused"];

function isResultStatus(value: unknown): value is ResultStatus {
  return (STATUSES as readonly unknown[]).includes(value);
}

export function decodeResults(content: Buffer): DecodedResults {
  if (isBlank(content.toString("latin1"))) return { kind: "empty" };
  const [line1, line2] = firstTwoLines(content);
  const meta = parseJsonLine(line2);
  if (meta !== null && meta.v === 1 && isId(meta.id)) {
    const owner: Owner = { id: meta.id, pid: isPid(meta.pid) ? meta.pid : null, pidns: typeof meta.pidns === "string" ? meta.pidns : null };
    if (meta.state === "running" && line1.length === 0) {
      return { ...owner, kind: "running", daemon: isPid(meta.daemon) ? meta.daemon : 0, run: typeof meta.run === "string" ? meta.run : "" };
    }
    if (meta.state === "done" && isResultStatus(meta.status)) {
      return {
        ...owner,
        kind: "done",
        status: meta.status,
        code: typeof meta.code === "number" && Number.isSafeInteger(meta.code) ? meta.code : null,
        signal: typeof meta.signal === "string" ? meta.signal : null,
        message: typeof meta.message === "string" ? meta.message : null,
        stdout: typeof meta.stdout === "string" ? Buffer.from(meta.stdout, "base64") : null,
        stderr: typeof meta.stderr === "string" ? Buffer.from(meta.stderr, "base64") : null,
        stdoutTruncated: meta.stdoutTruncated === true,
        stderrTruncated: meta.stderrTruncated === true,
        durationMs: typeof meta.durationMs === "number" && Number.isFinite(meta.durationMs) ? meta.durationMs : 0,
        ...(typeof meta.streamed === "number" && Number.isSafeInteger(meta.streamed) && meta.streamed >= 0 ? { streamed: meta.streamed } : {}),
      };
    }
  }
  // Blank as §1 defines it, not every Unicode space.
  const text = line1.toString("utf8").replace(/^[ \t\v\f\r]+|[ \t\v\f\r]+$/g, "");
  if (/^-?\d{1,10}$/.test(text)) return { kind: "foreign", code: Number(text) };
  return { kind: "garbage", text: content.subarray(0, 80).toString("utf8") };
}

/** A running or finished record of ours, which names its command's id and submitter. */
export function isRecord(decoded: DecodedResults): decoded is RunningRecord | DoneRecord {
  return decoded.kind === "running" || decoded.kind === "done";
}
