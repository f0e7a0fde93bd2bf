import fs from "node:fs";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import { STREAM_FILE_MAX, STREAM_FOLLOWER_WAIT_MS } from "../protocol/limits";
import type { ChannelFiles } from "../protocol/paths";
import { LineCutter, type LinePart } from "../protocol/stream-lines";
import { decodeStreamRead, encodeStreamHeader, encodeStreamRecord, type OutputName } from "../protocol/stream-record";
import type { Logger } from "../shared/log";

/**
 * The daemon's side of a followed command's output (PROTOCOL.md §5, "stream"): every line goes
 * to the channel's stream file as a numbered record, and a full file is replaced by a fresh one
 * once the follower has opened it, so disk use stays bounded and no line is lost to a follower
 * that keeps up. One that does not open the current file within STREAM_FOLLOWER_WAIT_MS (or
 * whose submitter is gone) loses that file's records, and sees the gap in the numbers.
 */
export class OutputStream {
  private fd: number | null = null;
  private size = 0;
  /** `seq` of the current file's first record. */
  private first = 1;
  private next = 1;
  private heldSince: number | null = null;
  private broken = false;
  private readonly cutters: Record<OutputName, LineCutter> = { stdout: new LineCutter(), stderr: new LineCutter() };

  private constructor(
    private readonly files: ChannelFiles,
    private readonly id: string,
    private readonly fileMode: number,
    private readonly followerGone: () => boolean,
    private readonly log: Logger,
  ) {}

  /** Starts the command's stream file (before the command starts: a follower finds it from the first line). */
  static create(files: ChannelFiles, id: string, fileMode: number, followerGone: () => boolean, log: Logger): OutputStream {
    const stream = new OutputStream(files, id, fileMode, followerGone, log);
    removeStreamFiles(files);
    stream.startFile();
    return stream;
  }

  /** Appends the lines `chunk` completes; false when the output must pause until the follower catches up (see `mayGoOn`). */
  write(name: OutputName, chunk: Buffer): boolean {
    this.append(name, this.cutters[name].push(chunk));
    return this.mayGoOn();
  }

  /** Whether more output may be read now: the current file has room, or may be replaced. */
  mayGoOn(): boolean {
    if (this.size < STREAM_FILE_MAX || this.broken) return true;
    const read = readFollowerMark(this.files.streamRead);
    this.heldSince ??= performance.now();
    const waited = performance.now() - this.heldSince;
    if (read !== this.first && !this.followerGone() && waited < STREAM_FOLLOWER_WAIT_MS) return false;
    if (read !== this.first) this.log.info(`channel ${this.files.index}: the follower of ${this.id} has not opened its stream file for ${Math.round(waited)} ms; replacing it anyway (records ${this.first}–${this.next - 1} are lost to it)`);
    this.heldSince = null;
    this.startFile();
    return true;
  }

  /** Writes the last lines (without `\n`) and closes the file; the number of records written. */
  end(): number {
    for (const name of ["stdout", "stderr"] as const) this.append(name, this.cutters[name].flush());
    this.close();
    return this.next - 1;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private append(name: OutputName, parts: readonly LinePart[]): void {
    if (parts.length === 0) return;
    let text = "";
    for (const part of parts) text += encodeStreamRecord({ seq: this.next++, stream: name, more: part.more, text: part.text });
    if (this.fd === null || this.broken) return;
    try {
      this.size += fs.writeSync(this.fd, text);
    } catch (err) {
      // Numbered all the same: the follower learns from the gap how much it did not get.
      this.broken = true;
      this.log.error(`channel ${this.files.index}: cannot write ${this.files.stream} (${(err as Error).message}); the rest of ${this.id}'s output is not streamed`);
    }
  }

  /** A new file, whose first record will be `next`, renamed over the stream file. */
  private startFile(): void {
    this.close();
    this.first = this.next;
    const header = encodeStreamHeader({ id: this.id, first: this.first });
    try {
      writeFileAtomicSync(this.files.stream, header, this.fileMode);
      this.fd = fs.openSync(this.files.stream, "a");
      this.size = Buffer.byteLength(header);
    } catch (err) {
      this.broken = true;
      this.log.error(`channel ${this.files.index}: cannot write ${this.files.stream} (${(err as Error).message}); ${this.id}'s output is not streamed`);
    }
  }
}

/** Removes a channel's stream file and its follower mark (a command that is not followed leaves none). */
export function removeStreamFiles(files: ChannelFiles): void {
  fs.rmSync(files.stream, { force: true });
  fs.rmSync(files.streamRead, { force: true });
}

function readFollowerMark(file: string): number | null {
  try {
    return decodeStreamRead(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}
