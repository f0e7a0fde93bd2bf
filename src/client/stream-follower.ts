import fs from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import type { ChannelFiles } from "../protocol/paths";
import { decodeStreamHeader, decodeStreamRecord, encodeStreamRead, type OutputName } from "../protocol/stream-record";

/** A line of a followed command's output, as it came (PROTOCOL.md §5, "stream"). */
export interface OutputLine {
  /** The command's id. */
  readonly id: string;
  /** 1, 2, 3 … over stdout and stderr together. */
  readonly seq: number;
  readonly stream: OutputName;
  readonly text: string;
  /** The line was longer than the daemon's bound (8192 bytes): it goes on in the next line of the same stream. */
  readonly partial: boolean;
  /** Lines this follower did not get just before this one (it fell behind, or the daemon could not write them). */
  readonly missed: number;
}

interface OpenFile {
  readonly fd: number;
  readonly ino: number;
  /** With the inode, tells this file from a later one that reuses its inode once it is deleted. */
  readonly ctimeMs: number;
  readonly decoder: StringDecoder;
  /** Text read but not taken in yet (a line not ended yet, or lines beyond a slice). */
  rest: string;
  /** Its first line, the header, is still to be read. */
  header: boolean;
}

/** Bytes read, and lines handed on, per call of `poll`, so that a long stream leaves the event loop free in between. */
const SLICE_BYTES = 64 * 1024;
const SLICE_LINES = 50;

/**
 * The submitter's side of a followed command's output: reads the channel's stream file as the
 * daemon appends to it, tells the daemon which file it has open (so that file is not replaced
 * unread), moves on to the next file when the daemon replaces a full one, and counts what it
 * did not get from the gaps in the records' numbers.
 */
export class StreamFollower {
  private current: OpenFile | null = null;
  /** Newer files opened before the current one was read to its end: a replacement seen, or the newest at collect. */
  private readonly queued: OpenFile[] = [];
  /** A file whose header named another command (a leftover): not opened again. */
  private foreign: { ino: number; ctimeMs: number } | null = null;
  /** Collected: the mark is not written any more (it was removed with the stream file). */
  private detached = false;
  private next = 1;
  private missedTotal = 0;
  /** What `onLine` threw: no more lines are handed on, the rest is still read (the daemon waits for the mark). */
  private failure: { readonly error: unknown } | null = null;
  private readonly buffer = Buffer.allocUnsafe(SLICE_BYTES);

  constructor(
    private readonly files: ChannelFiles,
    private readonly id: string,
    private readonly fileMode: number,
    private readonly onLine: (line: OutputLine) => void,
  ) {}

  get missed(): number {
    return this.missedTotal;
  }

  /** Throws what `onLine` threw, if it did (once the command's result is in). */
  rethrow(): void {
    if (this.failure !== null) throw this.failure.error;
  }

  /** Reads one slice of what has arrived; true when more may be waiting at once. */
  poll(): boolean {
    this.current ??= this.newer();
    if (this.current === null) return false;
    if (this.readSlice(this.current)) return true;
    const newer = this.newer();
    if (newer === null) return false;
    // The daemon writes nothing to a file it has replaced; what it wrote before is there now.
    if (this.readSlice(this.current)) {
      this.queued.unshift(newer);
      return true;
    }
    fs.closeSync(this.current.fd);
    this.current = newer;
    return true;
  }

  /**
   * At collect, under the channel's locks: opens the newest stream file if it is not the one
   * being read, then removes the stream file and the mark (nothing will be appended: the
   * command has ended), so that the rest can be read after the locks are released.
   */
  detach(): void {
    const newest = this.openPath();
    const known = [this.current, ...this.queued].some((file) => file?.ino === newest?.ino);
    if (newest !== null && !known) this.queued.push(newest);
    else if (newest !== null) fs.closeSync(newest.fd);
    this.detached = true;
    for (const file of [this.files.stream, this.files.streamRead]) {
      try {
        fs.unlinkSync(file);
      } catch {
        // Gone already, or not a file (a directory put there): the daemon logs what it cannot remove.
      }
    }
  }

  /** After collect: reads everything left (in slices, between which `yieldNow` runs), then counts what never came of `streamed` records. */
  async finish(streamed: number, yieldNow: () => Promise<void>): Promise<void> {
    while (this.pollOrStop()) await yieldNow();
    this.close();
    if (this.next - 1 < streamed) this.missedTotal += streamed - (this.next - 1);
  }

  /** `poll`, but a file that cannot be read (EIO…) ends the following: what is left counts as missed. */
  pollOrStop(): boolean {
    try {
      return this.poll();
    } catch {
      this.close();
      return false;
    }
  }

  close(): void {
    for (const file of [this.current, ...this.queued.splice(0)]) if (file !== null) fs.closeSync(file.fd);
    this.current = null;
  }

  /** A newer file than the current one, if there is one: the one opened at collect, or the stream file once it has been replaced. */
  private newer(): OpenFile | null {
    const queued = this.queued.shift();
    if (queued !== undefined) return queued;
    const stat = statOf(this.files.stream);
    if (stat === null || stat.ino === this.current?.ino || (stat.ino === this.foreign?.ino && stat.ctimeMs === this.foreign.ctimeMs)) return null;
    return this.openPath();
  }

  /** Takes in one slice of `file`: lines already read, else what reading more brings; false at its end. */
  private readSlice(file: OpenFile): boolean {
    if (file.rest.includes("\n")) {
      this.consume(file, "");
      return true;
    }
    const read = fs.readSync(file.fd, this.buffer, 0, SLICE_BYTES, null);
    if (read === 0) return false;
    this.consume(file, file.decoder.write(this.buffer.subarray(0, read)));
    return true;
  }

  /** The stream file, if it is a regular file (not followed through a symbolic link, no wait on a FIFO). */
  private openPath(): OpenFile | null {
    let fd: number;
    try {
      fd = fs.openSync(this.files.stream, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch {
      return null;
    }
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      fs.closeSync(fd);
      return null;
    }
    return { fd, ino: stat.ino, ctimeMs: stat.ctimeMs, decoder: new StringDecoder("utf8"), rest: "", header: true };
  }

  private consume(file: OpenFile, text: string): void {
    let start = 0;
    let data = file.rest + text;
    let lines = 0;
    for (let end = data.indexOf("\n"); end >= 0 && lines < SLICE_LINES; end = data.indexOf("\n", start), lines++) {
      const line = data.endsWith("\r", end) ? data.slice(start, end - 1) : data.slice(start, end);
      start = end + 1;
      if (file.header) {
        if (!this.takeHeader(file, line)) return;
        continue;
      }
      const record = decodeStreamRecord(line);
      // Not a record (a damaged file): nothing to attribute it to; the numbers show the gap.
      if (record === null || record.seq < this.next) continue;
      const missed = record.seq - this.next;
      this.missedTotal += missed;
      this.next = record.seq + 1;
      this.handOn({ id: this.id, seq: record.seq, stream: record.stream, text: record.text, partial: record.more, missed });
    }
    data = data.slice(start);
    file.rest = data;
  }

  private handOn(line: OutputLine): void {
    if (this.failure !== null) return;
    try {
      this.onLine(line);
    } catch (error) {
      this.failure = { error };
    }
  }

  /** The file's first line: ours (the daemon is told it is open), or another command's (dropped). */
  private takeHeader(file: OpenFile, line: string): boolean {
    const header = decodeStreamHeader(line);
    if (header === null || header.id !== this.id) {
      this.foreign = { ino: file.ino, ctimeMs: file.ctimeMs };
      fs.closeSync(file.fd);
      if (this.current === file) this.current = null;
      return false;
    }
    file.header = false;
    if (this.detached) return true;
    try {
      writeFileAtomicSync(this.files.streamRead, encodeStreamRead(header), this.fileMode);
    } catch {
      // The daemon then waits its bound for this file, and goes on: only lines could be lost.
    }
    return true;
  }
}

function statOf(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}
