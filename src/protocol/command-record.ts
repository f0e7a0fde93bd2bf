import { randomBytes } from "node:crypto";
import { firstTwoLines, isBlank, isId, isPid, parseJsonLine } from "./command-line";
import { cwdProblem, envProblem, stdinProblem } from "./command-options";
import { MAX_TIMEOUT_MS } from "./limits";
import { PROTOCOL_VERSION } from "./version";

/** What a submitter writes into a channel's commands file (see PROTOCOL.md §4, "commands file"). */
export interface CommandRecord {
  readonly command: string;
  readonly id: string;
  /** The submitter's pid and pid namespace, so others can tell when it has died. */
  readonly pid: number | null;
  readonly pidns: string | null;
  /** Kill the command's process group after this many ms; 0 = never. */
  readonly timeoutMs: number;
  readonly capture: boolean;
  /** The command's working directory (absolute), or null for the daemon's own. */
  readonly cwd: string | null;
  /** Variables set over the daemon's environment, or null. */
  readonly env: Readonly<Record<string, string>> | null;
  /** Written to the command's standard input (else /dev/null), or null. */
  readonly stdin: Buffer | null;
  /** Each line of output is written to the channel's stream file as it comes (§5, "stream"). */
  readonly stream: boolean;
  /** Written by a seed-style submitter: line 1 only, no metadata. */
  readonly legacy: boolean;
}

const LINE2_KEYS = new Set(["v", "id", "pid", "pidns", "timeout", "capture", "cwd", "env", "stdin", "stream"]);

/** The options of a command beyond line 1 and its sender, as they default (a seed-style command has these). */
export const PLAIN_COMMAND = { timeoutMs: 0, capture: false, cwd: null, env: null, stdin: null, stream: false } as const;

/** Line 1 and line 2; the keys a daemon of before #13 does not know are written only when used, so it still runs plain commands. */
export function encodeCommandRecord(record: CommandRecord): string {
  const meta = {
    v: PROTOCOL_VERSION,
    id: record.id,
    pid: record.pid,
    pidns: record.pidns,
    timeout: record.timeoutMs,
    capture: record.capture,
    ...(record.cwd === null ? {} : { cwd: record.cwd }),
    ...(record.env === null ? {} : { env: record.env }),
    ...(record.stdin === null ? {} : { stdin: record.stdin.toString("base64") }),
    ...(record.stream ? { stream: true } : {}),
  };
  return `${record.command}\n${JSON.stringify(meta)}\n`;
}

/** Who a command is from, as far as its line 2 tells (PROTOCOL.md §4). */
export interface Sender {
  readonly id: string;
  readonly pid: number | null;
  readonly pidns: string | null;
}

export type DecodedCommands =
  | { readonly kind: "empty" }
  | { readonly kind: "pending"; readonly record: CommandRecord }
  /** Not to be run (line 1 unreadable, or line 2 present but invalid), from a sender who can be told why. */
  | { readonly kind: "refusable"; readonly sender: Sender; readonly reason: string }
  /** Not to be run, and from nobody who could collect an answer: emptied and logged. */
  | { readonly kind: "unattributable"; readonly reason: string };

/** Reads a commands file. Line 1 blank means nothing is pending. */
export function decodeCommands(content: Buffer): DecodedCommands {
  const [line1, line2] = firstTwoLines(content);
  if (isBlank(line1.toString("latin1"))) return { kind: "empty" };
  const line1Problem = unreadableLine1(line1);
  if (isBlank(line2.toString("latin1"))) {
    // A seed-style command. Binary garbage there is nobody's command: nobody will collect an answer.
    if (line1Problem !== null) return { kind: "unattributable", reason: line1Problem };
    const id = `legacy-${randomBytes(8).toString("hex")}`;
    return { kind: "pending", record: { command: line1.toString("utf8"), id, pid: null, pidns: null, ...PLAIN_COMMAND, legacy: true } };
  }
  const meta = parseJsonLine(line2);
  const sender = senderOf(meta);
  const reason = invalidLine2(meta) ?? line1Problem;
  if (meta === null || sender === null) return { kind: "unattributable", reason: reason ?? "line 2 has no valid id" };
  if (reason !== null) return { kind: "refusable", sender, reason };
  const record: CommandRecord = {
    command: line1.toString("utf8"),
    ...sender,
    timeoutMs: typeof meta.timeout === "number" ? meta.timeout : 0,
    capture: meta.capture === true,
    cwd: typeof meta.cwd === "string" ? meta.cwd : null,
    env: meta.env === undefined ? null : (meta.env as Record<string, string>),
    stdin: typeof meta.stdin === "string" ? Buffer.from(meta.stdin, "base64") : null,
    stream: meta.stream === true,
    legacy: false,
  };
  return { kind: "pending", record };
}

function unreadableLine1(line1: Buffer): string | null {
  if (line1.includes(0)) return "line 1 of the commands file contains a NUL byte";
  if (!Buffer.from(line1.toString("utf8"), "utf8").equals(line1)) return "line 1 of the commands file is not valid UTF-8";
  return null;
}

/** The id, pid and pid namespace of line 2 where each is itself valid; null without a valid id. */
function senderOf(meta: Record<string, unknown> | null): Sender | null {
  if (meta === null || !isId(meta.id)) return null;
  return { id: meta.id, pid: isPid(meta.pid) ? meta.pid : null, pidns: isPidns(meta.pidns) ? meta.pidns : null };
}

/**
 * What makes a present line 2 invalid (PROTOCOL.md §4, "valid line 2"), or null. An invalid
 * line 2 is never run as a seed command: its sender meant something this daemon cannot honour.
 */
export function invalidLine2(meta: Record<string, unknown> | null): string | null {
  if (meta === null) return "line 2 of the commands file is not a JSON object";
  const unknown = Object.keys(meta).filter((key) => !LINE2_KEYS.has(key));
  if (unknown.length > 0) return `line 2 has key(s) this daemon does not know: ${unknown.join(", ")} (a newer submitter? upgrade the daemon)`;
  if (meta.v !== PROTOCOL_VERSION) return `line 2 is protocol version ${JSON.stringify(meta.v)}; this daemon speaks version ${PROTOCOL_VERSION}`;
  if (!isId(meta.id)) return `line 2 "id" must be 1 to 64 of A-Z a-z 0-9 . _ -, got ${show(meta.id)}`;
  if (meta.pid !== undefined && meta.pid !== null && !isPid(meta.pid)) return `line 2 "pid" must be a whole number above 0 or null, got ${show(meta.pid)}`;
  if (meta.pidns !== undefined && meta.pidns !== null && !isPidns(meta.pidns)) return `line 2 "pidns" must be a string of at most 256 characters or null, got ${show(meta.pidns)}`;
  if (meta.timeout !== undefined && !(typeof meta.timeout === "number" && Number.isSafeInteger(meta.timeout) && meta.timeout >= 0 && meta.timeout <= MAX_TIMEOUT_MS)) {
    return `line 2 "timeout" must be a whole number of ms from 0 to ${MAX_TIMEOUT_MS}, got ${show(meta.timeout)}`;
  }
  if (meta.capture !== undefined && typeof meta.capture !== "boolean") return `line 2 "capture" must be true or false, got ${show(meta.capture)}`;
  if (meta.stream !== undefined && typeof meta.stream !== "boolean") return `line 2 "stream" must be true or false, got ${show(meta.stream)}`;
  const problem = keyProblem("cwd", meta.cwd, cwdProblem) ?? keyProblem("env", meta.env, envProblem) ?? keyProblem("stdin", meta.stdin, stdinProblem);
  return problem;
}

function keyProblem(key: string, value: unknown, rule: (value: unknown) => string | null): string | null {
  if (value === undefined) return null;
  const problem = rule(value);
  return problem === null ? null : `line 2 "${key}" ${problem}`;
}

function isPidns(value: unknown): value is string {
  return typeof value === "string" && value.length <= 256;
}

function show(value: unknown): string {
  // JSON.stringify is typed as returning a string, but gives undefined for undefined (and functions).
  const json = JSON.stringify(value) as string | undefined;
  return json?.slice(0, 40) ?? String(value);
}
