import { isId } from "./command-line";

/**
 * The lines of a stream file (PROTOCOL.md §5, "stream"): a header naming the command and the
 * sequence number of its first record, then one record per line of output (or part of one).
 */

export type OutputName = "stdout" | "stderr";

export interface StreamHeader {
  readonly id: string;
  /** The `seq` of the file's first record. */
  readonly first: number;
}

export interface StreamRecord {
  /** 1, 2, 3 … over the command's whole output, stdout and stderr together, in the order the daemon read them. */
  readonly seq: number;
  readonly stream: OutputName;
  /** The line goes on in the next record of the same stream (it was longer than STREAM_LINE_MAX). */
  readonly more: boolean;
  readonly text: string;
}

export function encodeStreamHeader(header: StreamHeader): string {
  return `stream ${header.id} ${header.first}\n`;
}

export function decodeStreamHeader(line: string): StreamHeader | null {
  const [word, id, first, extra] = line.split(" ");
  if (word !== "stream" || !isId(id) || extra !== undefined) return null;
  const seq = decodeSeq(first);
  return seq === null ? null : { id, first: seq };
}

const STREAM_LETTER: Record<OutputName, string> = { stdout: "o", stderr: "e" };

export function encodeStreamRecord(record: StreamRecord): string {
  return `${record.seq} ${STREAM_LETTER[record.stream]}${record.more ? "+" : ""} ${record.text}\n`;
}

/** One record line (without its `\n`); null when it is not one. */
export function decodeStreamRecord(line: string): StreamRecord | null {
  const space = line.indexOf(" ");
  const seq = decodeSeq(line.slice(0, space));
  if (space < 0 || seq === null) return null;
  const more = line[space + 2] === "+";
  const textStart = space + (more ? 4 : 3);
  if (line[textStart - 1] !== " ") return null;
  const letter = line[space + 1];
  const stream = letter === "o" ? "stdout" : letter === "e" ? "stderr" : null;
  if (stream === null) return null;
  return { seq, stream, more, text: line.slice(textStart) };
}

/** `R.stream.read`: the command and the `first` of the stream file its follower has open (the header's fields). */
export function encodeStreamRead(mark: StreamHeader): string {
  return `${mark.id} ${mark.first}\n`;
}

export function decodeStreamRead(content: string): StreamHeader | null {
  const [id, first, extra] = content.trim().split(" ");
  const seq = decodeSeq(first);
  return isId(id) && seq !== null && extra === undefined ? { id, first: seq } : null;
}

function decodeSeq(text: string | undefined): number | null {
  if (text === undefined || !/^[1-9][0-9]{0,15}$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}
