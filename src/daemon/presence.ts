import fs from "node:fs";
import { writeFileAtomicSync } from "../protocol/io/atomic-write";
import { encodeDaemonInfo, type DaemonInfo } from "../protocol/daemon-info";
import { readLiveDaemon } from "../protocol/io/live-daemon";
import { daemonLockState, refreshDaemonLock, releaseDaemonLock, takeDaemonLock } from "../protocol/io/daemon-lock";
import { FileDaemonError } from "../protocol/errors";
import type { DaemonFiles } from "../protocol/paths";
import type { Logger } from "../shared/log";

/**
 * How long the files must look settled before the daemon writes its info file or lock again
 * after they vanished: while `rm -r` empties the directory, writing into it would make the
 * removal fail ("Directory not empty").
 */
export const SETTLE_MS = 1000;

/** While serving, how often (at most) a wake checks the daemon lock and `COMMANDS.daemon`. */
const PRESENCE_CHECK_MS = 100;

/** What the daemon may do now: serve, wait for its files to come back, or stop (another daemon serves them). */
export type Presence = "serving" | "waiting" | "displaced";

/**
 * The daemon's presence (PROTOCOL.md §3): holds the daemon lock, publishes `COMMANDS.daemon`
 * and keeps both true. When the lock vanishes with its directory it stops serving, and takes
 * the lock again once the directory is back, unless another live daemon has started there.
 * A directory it cannot look at (chmod 000) is waited out: that is never taken for a rival.
 */
export class DaemonPresence {
  private state: Presence = "waiting";
  private readonly expected: string;
  private refresher: NodeJS.Timeout | null = null;
  private infoWrongSince: number | null = null;
  private directoriesBackSince: number | null = null;
  private lastProblem = "";
  private servingCheckedAt = -Infinity;

  constructor(
    private readonly files: DaemonFiles,
    private readonly info: DaemonInfo,
    private readonly log: Logger,
    /** Checks the files before serving them again (throws UNSAFE_FILES). */
    private readonly checkSafe: () => void,
  ) {
    this.expected = encodeDaemonInfo(info);
  }

  get current(): Presence {
    return this.state;
  }

  /** Whether the next look must come soon (files vanished or were damaged), whatever sleep_time is. */
  get settling(): boolean {
    return this.state === "waiting" || this.infoWrongSince !== null;
  }

  /** Takes the daemon lock; throws ALREADY_RUNNING when a live daemon holds it. */
  async take(): Promise<void> {
    await takeDaemonLock(this.files, this.info, this.info.stale, false);
    this.serve();
  }

  private serve(): void {
    this.state = "serving";
    this.refresher ??= setInterval(() => this.refresh(), this.info.stale / 2).unref();
  }

  publish(): void {
    writeFileAtomicSync(this.files.info, this.expected, 0o644);
  }

  /**
   * On a wake: is the lock still there, is `COMMANDS.daemon` still ours; take the files back
   * when they return. While serving, looked at no more often than every PRESENCE_CHECK_MS:
   * a command wakes the daemon three times, and these reads were a tenth of its file work.
   */
  async keep(): Promise<Presence> {
    if (this.state === "serving" && performance.now() - this.servingCheckedAt >= PRESENCE_CHECK_MS) {
      this.servingCheckedAt = performance.now();
      this.keepServing();
    }
    if (this.state === "waiting") await this.comeBack();
    return this.state;
  }

  /** On a clean exit: removes `COMMANDS.daemon` (if it still names this daemon), then the lock. */
  release(): void {
    if (this.refresher !== null) clearInterval(this.refresher);
    this.refresher = null;
    if (this.state !== "serving") return;
    try {
      if (fs.readFileSync(this.files.info, "utf8") === this.expected) fs.rmSync(this.files.info, { force: true });
    } catch {
      // Gone already: nothing of ours to remove.
    }
    releaseDaemonLock(this.files);
    this.state = "waiting";
  }

  private refresh(): void {
    if (this.state === "serving" && refreshDaemonLock(this.files) === "gone") this.lose();
  }

  private keepServing(): void {
    if (daemonLockState(this.files) === "gone") {
      this.lose();
      return;
    }
    let content: string | null;
    try {
      content = fs.readFileSync(this.files.info, "utf8");
    } catch (err) {
      // Unreadable for now (a directory turned private for a while): wait, never guess.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return;
      content = null;
    }
    if (content === this.expected) {
      this.infoWrongSince = null;
      return;
    }
    // Removed or damaged by someone: publish it again, unless the whole directory is going.
    this.infoWrongSince ??= performance.now();
    if (performance.now() - this.infoWrongSince < SETTLE_MS) return;
    try {
      this.publish();
      this.log.info(`${this.files.info} was ${content === null ? "removed" : "damaged"}; published again`);
      this.infoWrongSince = null;
    } catch {
      // Retried on the next wake.
    }
  }

  private lose(): void {
    this.state = "waiting";
    this.directoriesBackSince = null;
    this.log.error(`the daemon lock ${this.files.daemonLock} disappeared: the directory was removed or emptied. Not taking commands until it is back (a running command finishes; its result is dropped if its running record is gone)`);
  }

  private async comeBack(): Promise<void> {
    const missing = this.files.directories.find((dir) => !fs.existsSync(dir));
    if (missing !== undefined) {
      this.directoriesBackSince = null;
      this.problem(`waiting for ${missing} to exist again`);
      return;
    }
    this.directoriesBackSince ??= performance.now();
    if (performance.now() - this.directoriesBackSince < SETTLE_MS) return;
    try {
      const other = readLiveDaemon(this.files);
      if (other !== null && other.pid !== process.pid) {
        this.displaced(`file-daemon pid ${other.pid} serves ${this.files.commands} now`);
        return;
      }
      this.checkSafe();
      await takeDaemonLock(this.files, this.info, this.info.stale, true);
      this.serve();
      this.publish();
    } catch (err) {
      if (err instanceof FileDaemonError && err.code === "ALREADY_RUNNING") {
        this.displaced(err.message);
        return;
      }
      this.state = "waiting";
      this.problem(err instanceof Error ? err.message : String(err));
      return;
    }
    this.lastProblem = "";
    this.log.info(`${this.files.directories.join(" and ")} back: serving ${this.files.commands} again`);
  }

  private displaced(why: string): void {
    this.state = "displaced";
    this.log.error(`${why}; stopping so that two daemons never serve the same files`);
  }

  private problem(message: string): void {
    if (this.lastProblem === message) return;
    this.lastProblem = message;
    this.log.error(`not serving: ${message}`);
  }
}
