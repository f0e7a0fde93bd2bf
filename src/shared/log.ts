import fs from "node:fs";

export interface Logger {
  info(message: string): void;
  error(message: string): void;
}

/** Lines go to stderr (systemd's journal) or, with a path, to a file reopened on `reopen()`. */
export class LineLogger implements Logger {
  private fd: number | null = null;

  constructor(private readonly file: string | null) {
    this.fd = this.file === null ? null : fs.openSync(this.file, "a", 0o600);
  }

  /**
   * Opens the log file again (after logrotate renamed it: SIGHUP). When it cannot be opened,
   * the daemon keeps writing to the file it had and says why there.
   */
  reopen(): boolean {
    if (this.file === null) return true;
    const previous = this.fd;
    try {
      this.fd = fs.openSync(this.file, "a", 0o600);
    } catch (err) {
      this.error(`cannot reopen the log ${this.file}: ${(err as Error).message}; still writing to the previous file`);
      return false;
    }
    if (previous !== null) fs.closeSync(previous);
    return true;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  info(message: string): void {
    this.write("info", message);
  }

  error(message: string): void {
    this.write("error", message);
  }

  warn(message: string): void {
    this.write("warning", message);
  }

  private write(level: string, message: string): void {
    const line = `${new Date().toISOString()} file-daemon[${process.pid}] ${level}: ${message}\n`;
    try {
      fs.writeSync(this.fd ?? 2, line);
    } catch {
      // A log that cannot be written must never stop the daemon.
    }
  }
}

export const silentLogger: Logger = { info: () => undefined, error: () => undefined };
