import fs from "node:fs";
import { replaceWithOpenFileSync } from "../protocol/io/atomic-write";
import { STREAM_FILE_MAX, STREAM_FOLLOWER_WAIT_MS } from "../protocol/limits";
import type { ChannelFiles } from "../protocol/paths";
import { LineCutter, type LinePart } from "../protocol/stream-lines";
import { decodeStreamRead, encodeStreamHeader, encodeStreamRecord, type OutputName, type StreamHeader } from "../protocol/stream-record";
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

  /**
   * Starts the command's stream file (before the command starts: a follower finds it from the
   * first line). Never throws: a stream that cannot be written is numbered all the same, so its
   * follower learns from `streamed` how much it did not get.
   */
  static create(files: ChannelFiles, id: string, fileMode: number, followerGone: () => boolean, log: Logger): OutputStream {
    const stream = new OutputStream(files, id, fileMode, followerGone, log);
    const left = removeStreamFiles(files);
    if (left !== null) log.error(`channel ${files.index}: ${left}`);
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
    const mark = readFollowerMark(this.files.streamRead);
    const read = mark?.id === this.id && mark.first === this.first;
    this.heldSince ??= performance.now();
    const waited = performance.now() - this.heldSince;
    if (!read && !this.followerGone() && waited < STREAM_FOLLOWER_WAIT_MS) return false;
    if (!read) this.log.info(`channel ${this.files.index}: the follower of ${this.id} has not opened its stream file for ${Math.round(waited)} ms; replacing it anyway (records ${this.first}–${this.next - 1} are lost to it)`);
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
      // Appends go to the file made here, whatever the name may point to later.
      this.fd = replaceWithOpenFileSync(this.files.stream, header, this.fileMode);
      this.size = Buffer.byteLength(header);
    } catch (err) {
      this.broken = true;
      this.log.error(`channel ${this.files.index}: cannot write ${this.files.stream} (${(err as Error).message}); ${this.id}'s output is not streamed`);
    }
  }
}

/**
 * Removes a channel's stream file and its follower mark (a command that is not followed leaves
 * none); what could not be removed (a directory put there, a read-only file system), or null.
 */
export function removeStreamFiles(files: ChannelFiles): string | null {
  for (const file of [files.stream, files.streamRead]) {
    try {
      fs.unlinkSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") return `cannot remove ${file} (${code ?? String(err)}); remove it by hand`;
    }
  }
  return null;
}

/** The longest mark a follower writes: an id of 64 characters, a space, a number, a line break. */
const MARK_MAX_BYTES = 96;

/**
 * The follower's mark, read without following a symbolic link or blocking on a FIFO, and no
 * more of it than a mark can be: a file a third party put there can neither hang the daemon
 * nor fill its memory. Anything else reads as no mark.
 */
function readFollowerMark(file: string): StreamHeader | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buffer = Buffer.alloc(MARK_MAX_BYTES);
    const read = fs.readSync(fd, buffer, 0, MARK_MAX_BYTES, 0);
    return decodeStreamRead(buffer.subarray(0, read).toString("utf8"));
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}
