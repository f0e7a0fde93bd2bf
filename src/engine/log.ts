import fs from "node:fs";

export interface Logger {
  info(message: string): void;
  error(message: string): void;
}

/** Lines go to stderr (systemd's journal) or, with a path, to a file reopened on `reopen()`. */
export class LineLogger implements Logger {
  private fd: number | null = null;

  constructor(private readonly file: string | null) {
    this.reopen();
  }

  reopen(): void {
    if (this.file === null) return;
    const previous = this.fd;
    this.fd = fs.openSync(this.file, "a", 0o600);
    if (previous !== null) fs.closeSync(previous);
  }

  info(message: string): void {
    this.write("info", message);
  }

  error(message: string): void {
    this.write("error", message);
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
