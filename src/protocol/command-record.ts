import { randomBytes } from "node:crypto";
import { firstTwoLines, isBlank, isId, isPid, parseJsonLine } from "./command-line";

/** What a submitter writes into a channel's commands file (see PROTOCOL.md, "commands file"). */
export interface CommandRecord {
  readonly command: string;
  readonly id: string;
  /** The submitter's pid and pid namespace, so others can tell when it has died. */
  readonly pid: number | null;
  readonly pidns: string | null;
  /** Kill the command's process group after this many ms; 0 = never. */
  readonly timeoutMs: number;
  readonly capture: boolean;
  /** Written by a seed-style submitter: line 1 only, no metadata. */
  readonly legacy: boolean;
}

export function encodeCommandRecord(record: CommandRecord): string {
  const meta = { v: 1, id: record.id, pid: record.pid, pidns: record.pidns, timeout: record.timeoutMs, capture: record.capture };
  return `${record.command}\n${JSON.stringify(meta)}\n`;
}

export type DecodedCommands =
  | { readonly kind: "empty" }
  | { readonly kind: "pending"; readonly record: CommandRecord; readonly raw: Buffer }
  /** Line 1 holds bytes that are not a runnable command (invalid UTF-8, NUL). */
  | { readonly kind: "unreadable"; readonly id: string; readonly pid: number | null; readonly pidns: string | null; readonly reason: string };

/** Reads a commands file. Line 1 blank means nothing is pending. */
export function decodeCommands(content: Buffer): DecodedCommands {
  const [line1, line2] = firstTwoLines(content);
  if (isBlank(line1.toString("latin1"))) return { kind: "empty" };
  const meta = parseJsonLine(line2);
  const valid = meta !== null && meta.v === 1 && isId(meta.id);
  const id = valid ? (meta.id as string) : `legacy-${randomBytes(8).toString("hex")}`;
  const pid = valid && isPid(meta.pid) ? meta.pid : null;
  const pidns = valid && typeof meta.pidns === "string" ? meta.pidns : null;
  if (line1.includes(0)) return { kind: "unreadable", id, pid, pidns, reason: "line 1 of the commands file contains a NUL byte" };
  const command = line1.toString("utf8");
  if (!Buffer.from(command, "utf8").equals(line1)) {
    return { kind: "unreadable", id, pid, pidns, reason: "line 1 of the commands file is not valid UTF-8" };
  }
  const timeout = valid && Number.isSafeInteger(meta.timeout) && (meta.timeout as number) > 0 ? (meta.timeout as number) : 0;
  const record: CommandRecord = { command, id, pid, pidns, timeoutMs: timeout, capture: valid && meta.capture === true, legacy: !valid };
  return { kind: "pending", record, raw: content };
}
