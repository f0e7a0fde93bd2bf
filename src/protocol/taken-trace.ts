import { randomBytes } from "node:crypto";
import { isId } from "./command-line";

/**
 * The taken trace `C.taken` (PROTOCOL.md §5, "take"): the daemon's record of the ids it took
 * from a channel, written before a command can start and kept after its result is gone. It
 * is how a submitter whose command vanished tells "it never started" (place it again) from
 * "it was taken" (outcome unknown), and how a daemon refuses to start the same id twice.
 *
 * Line 1 is `trace <epoch>` (16 hex digits, new whenever the trace is created or repaired),
 * then one line `<seq> <id>` per take, oldest first, seq counting 1, 2, 3 … within the epoch.
 */
export interface TakenTrace {
  readonly epoch: string;
  /** The last TRACE_LENGTH takes, oldest first, seq contiguous. */
  readonly entries: readonly { readonly seq: number; readonly id: string }[];
}

/** How many entries the trace keeps (oldest dropped first). */
export const TRACE_LENGTH = 64;

/** Where the trace stood when a submitter placed its command; null when there was none to stand on. */
export interface TraceAnchor {
  readonly epoch: string;
  readonly seq: number;
}

/** A trace that is missing, empty or damaged decodes to null: it proves nothing. */
export function decodeTrace(content: Buffer): TakenTrace | null {
  const lines = content.toString("utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  const epoch = TRACE_HEADER.exec(lines[0] ?? "")?.[1];
  if (epoch === undefined) return null;
  const entries: { seq: number; id: string }[] = [];
  for (let i = 1; i < lines.length; i++) {
    const entry = decodeEntry(lines[i] ?? "");
    if (entry === null) return null;
    const previous = entries.at(-1);
    if (previous !== undefined && entry.seq !== previous.seq + 1) return null;
    entries.push(entry);
  }
  return { epoch, entries };
}

const TRACE_HEADER = /^trace ([0-9a-f]{16})$/;
const SEQ = /^[1-9]\d{0,14}$/;

/** `<seq> <id>`, or null. */
function decodeEntry(line: string): { seq: number; id: string } | null {
  const space = line.indexOf(" ");
  if (space < 0) return null;
  const seqText = line.slice(0, space);
  const id = line.slice(space + 1);
  return SEQ.test(seqText) && isId(id) ? { seq: Number(seqText), id } : null;
}

export function encodeTrace(trace: TakenTrace): string {
  return `trace ${trace.epoch}\n${trace.entries.map((entry) => `${entry.seq} ${entry.id}\n`).join("")}`;
}

/** A trace with a new epoch and no entries (the daemon starts or repairs one). */
export function newTrace(): TakenTrace {
  return { epoch: randomBytes(8).toString("hex"), entries: [] };
}

/** The trace after taking `id`: one more entry, the oldest dropped past TRACE_LENGTH. */
export function appendTaken(trace: TakenTrace, id: string): TakenTrace {
  const seq = (trace.entries.at(-1)?.seq ?? 0) + 1;
  return { epoch: trace.epoch, entries: [...trace.entries, { seq, id }].slice(-TRACE_LENGTH) };
}

export function anchorOf(trace: TakenTrace | null): TraceAnchor | null {
  return trace === null ? null : { epoch: trace.epoch, seq: trace.entries.at(-1)?.seq ?? 0 };
}

export function wasTaken(trace: TakenTrace | null, id: string): boolean {
  return trace?.entries.some((entry) => entry.id === id) ?? false;
}

/** Whether `trace` still shows every take made since `anchor` was read (same epoch, nothing dropped since). */
export function coversSince(trace: TakenTrace | null, anchor: TraceAnchor | null): boolean {
  if (trace === null || anchor === null || trace.epoch !== anchor.epoch) return false;
  const oldest = trace.entries[0];
  return oldest === undefined ? anchor.seq === 0 : oldest.seq <= anchor.seq + 1;
}
