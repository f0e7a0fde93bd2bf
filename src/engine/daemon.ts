import { randomBytes } from "node:crypto";
import fs, { promises as fsp } from "node:fs";
import path from "node:path";
import lockfile from "proper-lockfile";
import { DEFAULT_FILE_MODE, writeFileAtomic } from "../protocol/atomic-write";
import { decodeDaemonInfo, encodeDaemonInfo, readLiveDaemon, type DaemonInfo } from "../protocol/daemon-info";
import { FileDaemonError, fromFsError } from "../protocol/errors";
import { isPidAlive, processStartTime } from "../protocol/liveness";
import { DEFAULT_STALE_MS, privateFs } from "../protocol/lock";
import { channelFiles, daemonFiles, lockPath, type DaemonFiles } from "../protocol/paths";
import { DaemonChannel } from "./daemon-channel";
import { DirectoryWatch } from "./dir-watch";
import { silentLogger, type Logger } from "./log";
import { closeWarmShells, DEFAULT_CAPTURE_LIMIT } from "./run-command";
import { channelCount, checkPath, sleepTimeMs } from "./settings";
import { checkFilesAreSafe, maxChannelFileBytes } from "./file-safety";
import { VERSION } from "./version";

/** How soon the daemon tries a busy lock again (ms), when that is sooner than sleep_time. */
const BUSY_RETRY_MS = 2;

/**
 * How long the files must look settled before the daemon writes its info file or lock again
 * after they vanished: while `rm -r` empties the directory, writing into it would make the
 * removal fail ("Directory not empty").
 */
const SETTLE_MS = 1000;

export interface DaemonOptions {
  readonly commands: string;
  readonly results: string;
  /** Seconds between looks at the files when no change event arrives (the seed's sleep_time). */
  readonly sleepTime: number;
  /** Commands that may run at once, each on its own pair of files (default 1). */
  readonly channels?: number;
  readonly stale?: number;
  readonly shell?: string;
  readonly captureLimit?: number;
  /** SIGTERM → SIGKILL delay when killing a command's group (ms, default 2000). */
  readonly killGraceMs?: number;
  /** On stop, how long running commands may finish before they are killed (ms, default 10000). */
  readonly stopGraceMs?: number;
  readonly resultTtlMs?: number;
  /** Use change events (default); false polls every sleep_time only. */
  readonly watch?: boolean;
  readonly fileMode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly pidfile?: string;
  readonly log?: Logger;
}

export class Daemon {
  private readonly channels: DaemonChannel[];
  private readonly watch: DirectoryWatch;
  private readonly log: Logger;
  private stopping = false;
  private loopDone: Promise<void> = Promise.resolve();
  private releaseDaemonLock: (() => Promise<void>) | null = null;
  /** Why the daemon lock is not held (the directory was removed): no command is taken meanwhile. */
  private lockLost: string | null = null;
  private lockLostReported = "";
  /** Since when (performance.now) the info file is missing, or every directory exists again. */
  private infoMissingSince: number | null = null;
  private directoriesBackSince: number | null = null;
  private lastError = new Map<number, string>();
  private stopPromise: Promise<void> | null = null;
  private resolveStopped!: () => void;
  /** Resolves once the daemon has stopped (by `stop()` or a fatal error). */
  readonly stopped = new Promise<void>((resolve) => (this.resolveStopped = resolve));

  private constructor(
    readonly files: DaemonFiles,
    readonly info: DaemonInfo,
    private readonly options: DaemonOptions,
    runToken: string,
  ) {
    this.log = options.log ?? silentLogger;
    const sleepMs = sleepTimeMs(options.sleepTime);
    this.watch = new DirectoryWatch(files.directories, options.watch ?? true);
    const ctx = {
      lock: { stale: info.stale },
      fileMode: options.fileMode ?? DEFAULT_FILE_MODE,
      run: {
        shell: options.shell ?? "/bin/sh",
        captureLimit: options.captureLimit ?? DEFAULT_CAPTURE_LIMIT,
        killGraceMs: options.killGraceMs ?? 2000,
        ...(options.uid === undefined ? {} : { uid: options.uid }),
        ...(options.gid === undefined ? {} : { gid: options.gid }),
      },
      resultTtlMs: options.resultTtlMs ?? Math.max(600_000, 20 * sleepMs),
      runToken,
      log: this.log,
      wake: () => this.watch.changes.notify(),
    };
    this.channels = Array.from({ length: info.channels }, (_, i) => new DaemonChannel(channelFiles(files, i), ctx));
  }

  /** Takes the files (refusing if another daemon serves them), recovers, and starts serving. */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const files = daemonFiles(checkPath(options.commands, "commands"), checkPath(options.results, "results"));
    if (files.commands === files.results) throw new FileDaemonError("BAD_OPTION", "the commands and results files must be different files");
    const sleepMs = sleepTimeMs(options.sleepTime);
    const channels = channelCount(options.channels ?? 1);
    const stale = Math.max(2000, options.stale ?? DEFAULT_STALE_MS);
    for (const dir of files.directories) {
      try {
        await fsp.access(dir);
      } catch (err) {
        throw fromFsError(err, dir, "cannot use directory");
      }
    }
    await checkFilesAreSafe(files, channels, options.fileMode ?? DEFAULT_FILE_MODE, maxChannelFileBytes(options.captureLimit ?? DEFAULT_CAPTURE_LIMIT));
    const info: DaemonInfo = {
      commands: files.commands,
      results: files.results,
      pid: process.pid,
      startTime: await processStartTime(process.pid),
      channels,
      sleepTime: sleepMs / 1000,
      stale,
      version: VERSION,
      startedAt: new Date().toISOString(),
    };
    const daemon = new Daemon(files, info, options, randomBytes(8).toString("hex"));
    await daemon.takeFiles();
    return daemon;
  }

  // Locked under the info file's name: proper-lockfile keys its locks by file, and the
  // commands file's own lock is taken and released all the time.
  private lockInfoFile(): Promise<() => Promise<void>> {
    return lockfile.lock(this.files.info, {
      realpath: false,
      fs: privateFs,
      stale: this.info.stale,
      onCompromised: (err) => this.onLockCompromised(err),
    });
  }

  private async takeFiles(): Promise<void> {
    await this.removeLockOfDeadDaemon();
    try {
      this.releaseDaemonLock = await this.lockInfoFile();
    } catch (err) {
      this.watch.close();
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") {
        const other = await readLiveDaemon(this.files);
        const who = other === null ? "another file-daemon" : `file-daemon pid ${other.pid}`;
        throw new FileDaemonError("ALREADY_RUNNING", `${who} already serves ${this.files.commands}; stop it first, or use other files`);
      }
      throw fromFsError(err, this.files.daemonLock, "cannot lock");
    }
    try {
      for (const channel of this.channels) {
        for (const file of [channel.files.commands, channel.files.results]) await this.createOrOpen(file);
        await channel.recover();
      }
      // The pidfile first: once the info file is there, the daemon is serving and fully set up.
      if (this.options.pidfile !== undefined) await this.writePidfile(this.options.pidfile);
      await this.publishInfo();
    } catch (err) {
      await this.releaseLock();
      this.watch.close();
      throw err;
    }
    this.log.info(`serving ${this.files.commands} -> ${this.files.results} (${this.info.channels} channel(s), sleep ${this.info.sleepTime} s)`);
    this.loopDone = this.loop();
  }

  /** Creates a channel file (or checks that an existing one can be written), saying what to fix. */
  private async createOrOpen(file: string): Promise<void> {
    try {
      const handle = await fsp.open(file, "a", this.options.fileMode ?? DEFAULT_FILE_MODE);
      await handle.close();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const stat = code === "EACCES" ? await fsp.stat(file).catch(() => null) : null;
      const uid = process.getuid?.() ?? 0;
      if (stat !== null && stat.uid !== uid) {
        throw new FileDaemonError("PERMISSION", `cannot open ${file}: it belongs to uid ${stat.uid} and the daemon runs as uid ${uid} (left by a daemon run as another user?); chown it to the daemon's user, or remove it`, { cause: err });
      }
      throw fromFsError(err, file, "cannot open");
    }
  }

  /**
   * A daemon killed with SIGKILL leaves its lock behind, fresh for up to `stale` ms. When the
   * info file names a process that is gone, the lock is dead now: take it over at once.
   */
  private async removeLockOfDeadDaemon(): Promise<void> {
    let content: string;
    try {
      content = await fsp.readFile(this.files.info, "utf8");
    } catch {
      return;
    }
    const previous = decodeDaemonInfo(content);
    if (previous === null || (await readLiveDaemon(this.files)) !== null) return;
    this.log.info(`daemon pid ${previous.pid} died without cleaning up; taking over its files`);
    await fsp.rm(this.files.info, { force: true });
    await fsp.rmdir(this.files.daemonLock).catch(() => undefined);
  }

  private async publishInfo(): Promise<void> {
    await writeFileAtomic(this.files.info, encodeDaemonInfo(this.info), 0o644);
  }

  /**
   * Writes the pidfile atomically. One that names a live file-daemon (another daemon given the
   * same --pidfile) is refused; one left by a dead daemon, or naming a pid that another program
   * has since been given, is stale and replaced.
   */
  private async writePidfile(pidfile: string): Promise<void> {
    let previous = "";
    try {
      previous = fs.readFileSync(pidfile, "utf8").trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw fromFsError(err, pidfile, "cannot read the pidfile");
    }
    const pid = /^\d{1,10}$/.test(previous) ? Number(previous) : null;
    if (pid !== null && pid !== process.pid && pid > 0) {
      const state = pidState(pid);
      if (state === "file-daemon") {
        throw new FileDaemonError("ALREADY_RUNNING", `the pidfile ${pidfile} names file-daemon pid ${pid}, which is running; stop it, or give this daemon another --pidfile`);
      }
      this.log.info(`the pidfile ${pidfile} named pid ${pid}, which ${state === "dead" ? "is not running" : "is another program now"}: stale, replaced`);
    } else if (previous !== "" && pid === null) {
      this.log.info(`the pidfile ${pidfile} held ${JSON.stringify(previous.slice(0, 40))}, not a pid: replaced`);
    }
    try {
      await writeFileAtomic(pidfile, `${process.pid}\n`, 0o644);
    } catch (err) {
      throw fromFsError(err, pidfile, "cannot write the pidfile");
    }
  }

  /** Removes the pidfile if it still names this daemon. */
  private async removePidfile(pidfile: string): Promise<void> {
    try {
      if (fs.readFileSync(pidfile, "utf8").trim() === String(process.pid)) fs.rmSync(pidfile, { force: true });
    } catch {
      // Gone already, or unreadable: nothing of ours to remove.
    }
  }

  private async loop(): Promise<void> {
    const sleepMs = this.info.sleepTime * 1000;
    // The daemon wakes for new commands and kill requests, not for its own writes (a finished
    // command wakes it directly); a lock found busy is tried again within milliseconds.
    const names = new Set(this.channels.flatMap(({ files }) => [files.commands, files.kill]).map((file) => path.basename(file)));
    const locks = new Set(this.channels.flatMap(({ files }) => [lockPath(files.commands), lockPath(files.results)]).map((file) => path.basename(file)));
    while (!this.stopping) {
      const generation = this.watch.changes.generation;
      const busy = await this.tick();
      if (busy) await this.watch.changes.wait(this.watch.changes.generation, Math.min(sleepMs, BUSY_RETRY_MS), undefined, locks);
      else await this.watch.changes.wait(generation, this.settling() ? Math.min(sleepMs, SETTLE_MS) : sleepMs, undefined, names);
    }
  }

  /** Waiting for vanished files to settle: look again within SETTLE_MS however long sleep_time is. */
  private settling(): boolean {
    return this.lockLost !== null || this.infoMissingSince !== null;
  }

  /** One pass over every channel; true when some channel found a lock busy. */
  private async tick(): Promise<boolean> {
    this.watch.rewatch();
    await this.keepDaemonLock();
    if (this.lockLost === null) {
      try {
        fs.statSync(this.files.info);
        this.infoMissingSince = null;
      } catch {
        // Someone removed the info file: publish it again, unless the whole directory is going.
        this.infoMissingSince ??= performance.now();
        if (performance.now() - this.infoMissingSince >= SETTLE_MS) {
          await this.publishInfo().then(() => (this.infoMissingSince = null), () => undefined);
        }
      }
    }
    let busy = false;
    for (const channel of this.channels) {
      try {
        busy = (await channel.service(!this.stopping && this.lockLost === null)) || busy;
        this.reportRecovered(channel.files.index);
      } catch (err) {
        this.reportError(channel.files.index, err);
      }
    }
    return busy;
  }

  private reportError(index: number, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.lastError.get(index) === message) return;
    this.lastError.set(index, message);
    this.log.error(`channel ${index}: ${message} (retrying every ${this.info.sleepTime} s; queued commands are kept)`);
  }

  private reportRecovered(index: number): void {
    if (!this.lastError.has(index)) return;
    this.lastError.delete(index);
    this.log.info(`channel ${index}: working again`);
  }

  private onLockCompromised(err: Error): void {
    this.releaseDaemonLock = null;
    if (!this.stopping && !fs.existsSync(this.files.daemonLock)) {
      // Nobody took it over: the directory was removed or emptied. Wait for it to come back.
      this.loseLock(`the daemon lock ${this.files.daemonLock} disappeared (${err.message})`);
      this.watch.changes.notify();
      return;
    }
    this.log.error(`the daemon lock ${this.files.daemonLock} was lost (${err.message}); stopping so that two daemons never serve the same files`);
    void this.stop();
  }

  private loseLock(why: string): void {
    if (this.lockLost !== null) return;
    this.lockLost = why;
    this.log.error(`${why}: the directory was removed or emptied. Not taking commands until it is back (a running command finishes; its result is kept and written once it can be)`);
  }

  /**
   * Notices that the daemon lock vanished with its directory (rm -r, a cleaned /tmp) and takes
   * it again once the directory is back, unless another daemon has started there meanwhile
   * (then this one stops), or the new directory is unsafe (then it keeps waiting).
   */
  private async keepDaemonLock(): Promise<void> {
    if (this.stopping) return;
    if (this.lockLost === null) {
      if (this.releaseDaemonLock === null || fs.existsSync(this.files.daemonLock)) return;
      const release = this.releaseDaemonLock;
      this.releaseDaemonLock = null;
      await release().catch(() => undefined);
      this.loseLock(`the daemon lock ${this.files.daemonLock} disappeared`);
    }
    const missing = this.files.directories.find((dir) => !fs.existsSync(dir));
    if (missing !== undefined) {
      this.directoriesBackSince = null;
      return this.reportLockProblem(`waiting for ${missing} to exist again`);
    }
    this.directoriesBackSince ??= performance.now();
    if (performance.now() - this.directoriesBackSince < SETTLE_MS) return;
    const other = await readLiveDaemon(this.files);
    if (other !== null && other.pid !== process.pid) {
      this.log.error(`file-daemon pid ${other.pid} serves ${this.files.commands} now; stopping so that two daemons never serve the same files`);
      void this.stop();
      return;
    }
    try {
      await checkFilesAreSafe(this.files, this.channels.length, this.options.fileMode ?? DEFAULT_FILE_MODE, maxChannelFileBytes(this.options.captureLimit ?? DEFAULT_CAPTURE_LIMIT));
      await this.removeLockOfDeadDaemon();
      this.releaseDaemonLock = await this.lockInfoFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") {
        this.log.error(`another file-daemon took ${this.files.daemonLock} while the directory was gone; stopping so that two daemons never serve the same files`);
        void this.stop();
        return;
      }
      return this.reportLockProblem(err instanceof Error ? err.message : String(err));
    }
    try {
      await this.publishInfo();
    } catch (err) {
      await this.releaseLock();
      return this.reportLockProblem(err instanceof Error ? err.message : String(err));
    }
    this.lockLost = null;
    this.lockLostReported = "";
    this.directoriesBackSince = null;
    this.infoMissingSince = null;
    // An inotify watch on a removed directory is dead: watch the new one.
    this.watch.close();
    this.watch.rewatch();
    this.log.info(`${this.files.directories.join(" and ")} back: serving ${this.files.commands} again`);
  }

  private reportLockProblem(message: string): void {
    if (this.lockLostReported === message) return;
    this.lockLostReported = message;
    this.log.error(`not serving: ${message}`);
  }

  /** Stops taking commands, lets running ones finish (then kills them), writes their results. */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.watch.changes.notify();
    await this.loopDone;
    const running = this.channels.filter((channel) => channel.busy);
    if (running.length > 0) this.log.info(`stopping: waiting for ${running.length} running command(s)`);
    closeWarmShells();
    await Promise.all(this.channels.map((channel) => channel.finish(this.options.stopGraceMs ?? 10_000)));
    this.watch.close();
    if (this.releaseDaemonLock !== null) await fsp.rm(this.files.info, { force: true }).catch(() => undefined);
    if (this.options.pidfile !== undefined) await this.removePidfile(this.options.pidfile);
    await this.releaseLock();
    this.log.info("stopped");
    this.resolveStopped();
  }

  private async releaseLock(): Promise<void> {
    const release = this.releaseDaemonLock;
    this.releaseDaemonLock = null;
    if (release !== null) await release().catch(() => undefined);
  }
}

/** What runs as `pid` now: a file-daemon, another program (the pid was reused), or nothing. */
function pidState(pid: number): "file-daemon" | "other" | "dead" {
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    // No /proc (or the process just ended): only ask whether it exists.
    return fs.existsSync("/proc/self") || !isPidAlive(pid) ? "dead" : "file-daemon";
  }
  return cmdline.split("\0").some((arg) => /(^|\/)file-daemon(\.js)?$/.test(arg)) ? "file-daemon" : "other";
}
