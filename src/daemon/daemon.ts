import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { COMMAND_FEATURES, type DaemonInfo } from "../protocol/daemon-info";
import { FileDaemonError, fromFsError } from "../protocol/errors";
import { DirectoryWatch } from "../protocol/io/dir-watch";
import { processStartTime } from "../protocol/io/liveness";
import { maxChannelFileBytes } from "../protocol/limits";
import { channelFiles, daemonFiles, lockPath, type DaemonFiles } from "../protocol/paths";
import type { Logger } from "../shared/log";
import { checkPath } from "../shared/settings";
import { VERSION } from "../shared/version";
import { AllowPolicy } from "./allow-policy";
import { DaemonChannel } from "./channel";
import { checkFilesAreSafe } from "./file-safety";
import { resolveDaemonOptions, type DaemonOptions, type ResolvedDaemonOptions } from "./options";
import { removePidfile, writePidfile } from "./pidfile";
import { DaemonPresence, SETTLE_MS } from "./presence";
import { WarmShells } from "./warm-shells";
import { removeDeadWritersTemps } from "./temp-cleanup";

/** How soon the daemon tries a busy lock again (ms), when that is sooner than sleep_time. */
const BUSY_RETRY_MS = 2;

/** Temp files of writers that died mid-write are removed once this old, at start and about this often. */
const DEAD_TEMP_AGE_MS = 60_000;

/** Why a daemon stopped: asked to (SIGTERM, stop()), or another daemon serves its files now. */
export type StopCause = "requested" | "displaced";

export type { DaemonOptions } from "./options";

export class Daemon {
  private readonly channels: DaemonChannel[];
  private readonly watch: DirectoryWatch;
  private readonly log: Logger;
  private readonly presence: DaemonPresence;
  private readonly warmShells: WarmShells;
  private stopping = false;
  private stopCause: StopCause = "requested";
  private loopDone: Promise<void> = Promise.resolve();
  private lastError = new Map<number, string>();
  private tempsSweptAt = -Infinity;
  private stopPromise: Promise<void> | null = null;
  private resolveStopped!: (cause: StopCause) => void;
  /** Resolves once the daemon has stopped, saying why. */
  readonly stopped = new Promise<StopCause>((resolve) => (this.resolveStopped = resolve));

  private constructor(
    readonly files: DaemonFiles,
    readonly info: DaemonInfo,
    private readonly options: ResolvedDaemonOptions,
    runToken: string,
    private readonly policy: AllowPolicy | null,
  ) {
    this.log = options.log;
    this.watch = new DirectoryWatch(files.directories, options.watch);
    this.warmShells = new WarmShells(info.channels);
    const { fileMode, captureLimit } = options;
    const ctx = {
      lock: { stale: info.stale },
      fileMode,
      policy,
      run: {
        shell: options.shell,
        captureLimit,
        killGraceMs: options.killGraceMs,
        ...(options.uid === undefined ? {} : { uid: options.uid }),
        ...(options.gid === undefined ? {} : { gid: options.gid }),
      },
      resultTtlMs: options.resultTtlMs,
      runToken,
      log: this.log,
      wake: () => this.watch.changes.notify(),
      warmShells: this.warmShells,
    };
    this.channels = Array.from({ length: info.channels }, (_, i) => new DaemonChannel(channelFiles(files, i), ctx));
    this.presence = new DaemonPresence(files, info, this.log, () => checkFilesAreSafe(files, info.channels, fileMode, maxChannelFileBytes(captureLimit)));
  }

  /** Takes the files (refusing if another daemon serves them), recovers, and starts serving. */
  static async start(given: DaemonOptions): Promise<Daemon> {
    const options = resolveDaemonOptions(given);
    const files = daemonFiles(checkPath(options.commands, "commands"), checkPath(options.results, "results"));
    if (files.commands === files.results) throw new FileDaemonError("BAD_OPTION", "the commands and results files must be different files");
    const { channels } = options;
    for (const dir of files.directories) {
      try {
        fs.accessSync(dir);
      } catch (err) {
        throw fromFsError(err, dir, "cannot use directory");
      }
    }
    checkFilesAreSafe(files, channels, options.fileMode, maxChannelFileBytes(options.captureLimit));
    const policy = options.allow === undefined ? null : AllowPolicy.load(options.allow);
    const info: DaemonInfo = {
      commands: files.commands,
      results: files.results,
      pid: process.pid,
      startTime: processStartTime(process.pid),
      channels,
      sleepTime: options.sleepTime,
      stale: options.stale,
      version: VERSION,
      startedAt: new Date().toISOString(),
      features: COMMAND_FEATURES,
      fileMode: options.fileMode,
      allow: policy?.file ?? null,
    };
    const daemon = new Daemon(files, info, options, randomBytes(8).toString("hex"), policy);
    await daemon.takeFiles();
    return daemon;
  }

  private async takeFiles(): Promise<void> {
    try {
      await this.presence.take();
    } catch (err) {
      this.watch.close();
      throw err;
    }
    try {
      for (const channel of this.channels) {
        for (const file of [channel.files.commands, channel.files.results]) this.createOrOpen(file);
      }
      // The pidfile first: once the info file is there, the daemon is serving and fully set up.
      if (this.options.pidfile !== undefined) writePidfile(this.options.pidfile, this.log);
      this.presence.publish();
    } catch (err) {
      this.presence.release();
      this.watch.close();
      throw err;
    }
    this.log.info(`serving ${this.files.commands} -> ${this.files.results} (${this.info.channels} channel(s), sleep ${this.info.sleepTime} s)`);
    if (this.policy !== null) this.logPolicy("");
    // The first command should not wait for a fork either (after the log line, which says the
    // daemon serves from the moment its info file does).
    this.warmShells.refill(this.options);
    this.loopDone = this.loop();
  }

  /**
   * Reads the --allow file again (SIGHUP). A file that became unreadable, invalid or unsafe
   * leaves the policy in force as it was, and the log says why.
   */
  reloadPolicy(): void {
    if (this.policy === null) return;
    try {
      this.policy.reload();
    } catch (err) {
      this.log.error(`${err instanceof Error ? err.message : String(err)}; the allow file read before stays in force`);
      return;
    }
    this.logPolicy("reread: ");
  }

  private logPolicy(prefix: string): void {
    if (this.policy === null) return;
    const { file, patterns } = this.policy;
    if (patterns === 0) this.log.error(`${prefix}${file} holds no pattern: every command is refused`);
    else this.log.info(`${prefix}only commands allowed by ${file} run (${patterns} pattern(s))`);
  }

  /** Creates a channel file (or checks that an existing one can be written), saying what to fix. */
  private createOrOpen(file: string): void {
    try {
      fs.closeSync(fs.openSync(file, "a", this.options.fileMode));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const stat = code === "EACCES" ? statOrNull(file) : null;
      const uid = process.getuid?.() ?? 0;
      if (stat !== null && stat.uid !== uid) {
        throw new FileDaemonError("PERMISSION", `cannot open ${file}: it belongs to uid ${stat.uid} and the daemon runs as uid ${uid} (left by a daemon run as another user?); chown it to the daemon's user, or remove it`, { cause: err });
      }
      throw fromFsError(err, file, "cannot open");
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
      else await this.watch.changes.wait(generation, this.presence.settling ? Math.min(sleepMs, SETTLE_MS) : sleepMs, undefined, names);
    }
  }

  /** Removes the temp files killed writers left beside the channel files (PROTOCOL.md §1). */
  private sweepTemps(): void {
    const now = performance.now();
    if (now - this.tempsSweptAt < DEAD_TEMP_AGE_MS) return;
    this.tempsSweptAt = now;
    const files = [this.files.info, ...this.channels.flatMap(({ files }) => [files.commands, files.results, files.taken, files.kill])];
    removeDeadWritersTemps(files, DEAD_TEMP_AGE_MS, (line) => this.log.info(line));
  }

  /** One pass over every channel; true when some channel found a lock busy. */
  private async tick(): Promise<boolean> {
    this.watch.rewatch();
    this.sweepTemps();
    const before = this.presence.current;
    const presence = await this.presence.keep();
    if (presence === "displaced") {
      this.stopCause = "displaced";
      void this.stop();
      return false;
    }
    if (before === "waiting" && presence === "serving") {
      // An inotify watch on a removed directory is dead: watch the new one.
      this.watch.close();
      this.watch.rewatch();
    }
    let busy = false;
    for (const channel of this.channels) {
      try {
        busy = channel.service(!this.stopping && presence === "serving") || busy;
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
    this.warmShells.close();
    await Promise.all(this.channels.map((channel) => channel.finish(this.options.stopGraceMs)));
    this.watch.close();
    if (this.options.pidfile !== undefined) removePidfile(this.options.pidfile);
    this.presence.release();
    this.log.info("stopped");
    this.resolveStopped(this.stopCause);
  }
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}
