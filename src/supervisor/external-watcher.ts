import { EventEmitter } from "node:events";
import { type DaemonInfo } from "../protocol/daemon-info";
import { readLiveDaemon } from "../protocol/io/live-daemon";
import { daemonFiles, type DaemonFiles } from "../protocol/paths";
import { pause } from "../shared/pause";
import { checkPath } from "../shared/settings";

export interface ExternalStatus {
  readonly state: "running" | "down";
  readonly pid: number | null;
  readonly info: DaemonInfo | null;
  readonly message: string;
}

/**
 * External mode: someone else (systemd, a person) runs the daemon. Only looks at whether a
 * daemon serves the files, every `pollMs`, and emits "state" when that changes.
 */
export class ExternalWatcher extends EventEmitter<{ state: [ExternalStatus] }> {
  readonly files: DaemonFiles;
  private readonly stopping = new AbortController();
  /** A call, not a property read: TypeScript would carry `signal.aborted === false` across awaits. */
  private readonly stopped = (): boolean => this.stopping.signal.aborted;
  private current: ExternalStatus = { state: "down", pid: null, info: null, message: "not checked yet" };
  private loop: Promise<void> | null = null;

  constructor(
    commands: string,
    results: string,
    private readonly pollMs = 1000,
  ) {
    super();
    this.files = daemonFiles(checkPath(commands, "commands"), checkPath(results, "results"));
  }

  get status(): ExternalStatus {
    return this.current;
  }

  /** Looks once, reports, then keeps watching; returns the first status. */
  start(): ExternalStatus {
    this.check(true);
    this.loop = this.watch();
    return this.current;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async watch(): Promise<void> {
    while (!this.stopped()) {
      await pause(this.pollMs, this.stopping.signal);
      if (!this.stopped()) this.check(false);
    }
  }

  private check(first: boolean): void {
    const live = readLiveDaemon(this.files);
    if (!first && (live?.pid ?? null) === this.current.pid) return;
    this.current =
      live === null
        ? { state: "down", pid: null, info: null, message: `no daemon serves ${this.files.commands}; start one (systemd unit, or: file-daemon ${this.files.results} ${this.files.commands})` }
        : { state: "running", pid: live.pid, info: live, message: `daemon pid ${live.pid} serves ${this.files.commands}` };
    this.emit("state", this.current);
  }
}
