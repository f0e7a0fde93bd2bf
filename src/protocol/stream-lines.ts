import { STREAM_LINE_MAX } from "./limits";

/** A line of output, or a part of one too long for one record. */
export interface LinePart {
  readonly text: string;
  /** The line goes on in the next part. */
  readonly more: boolean;
}

/**
 * Cuts one output stream into lines as PROTOCOL.md §5 ("stream") says: at each `\n`, without
 * it and without one `\r` before it; a line of more than STREAM_LINE_MAX bytes is cut into parts
 * of at most that many, at a character boundary, none ending in `\r` (a reader would drop it,
 * §1). Bytes that are not UTF-8 become U+FFFD. Holds at most one part's bytes between calls.
 */
export class LineCutter {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes = STREAM_LINE_MAX) {}

  push(chunk: Buffer): LinePart[] {
    const parts: LinePart[] = [];
    let data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (let end = data.indexOf(0x0a); end >= 0; end = data.indexOf(0x0a)) {
      this.cut(data.subarray(0, end), parts, false);
      data = data.subarray(end + 1);
    }
    this.pending = Buffer.from(this.cut(data, parts, true));
    return parts;
  }

  /** What is left when the stream ends: a last line without `\n`. */
  flush(): LinePart[] {
    const parts: LinePart[] = [];
    if (this.pending.length > 0) this.cut(this.pending, parts, false);
    this.pending = Buffer.alloc(0);
    return parts;
  }

  /** Emits `line` as parts; with `open` (no `\n` seen yet) keeps back what may still grow, and returns it. */
  private cut(line: Buffer, parts: LinePart[], open: boolean): Buffer {
    let rest = !open && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
    while (rest.length > this.maxBytes) {
      const at = cutPoint(rest, this.maxBytes);
      parts.push({ text: rest.subarray(0, at).toString("utf8"), more: true });
      rest = rest.subarray(at);
    }
    if (open) return rest;
    parts.push({ text: rest.toString("utf8"), more: false });
    return Buffer.alloc(0);
  }
}

/** Where to cut `bytes` to at most `max`: not inside a UTF-8 sequence, not right after a `\r`. */
function cutPoint(bytes: Buffer, max: number): number {
  let at = max;
  // Continuation bytes are 10xxxxxx: back off to the start of the character (at most 3).
  for (let back = 0; back < 3 && at > 1 && ((bytes[at] ?? 0) & 0xc0) === 0x80; back++) at--;
  if (bytes[at - 1] === 0x0d && at > 1) at--;
  return at;
}
