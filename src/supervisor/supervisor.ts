import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { type DaemonInfo, type PublishedInfo } from "../protocol/daemon-info";
import { readLiveDaemon, checkServes } from "../protocol/io/live-daemon";
import { daemonFiles, type DaemonFiles } from "../protocol/paths";
import { EXIT } from "../shared/exit-status";
import { isGone, KILL_WAIT_MS, launchDaemon, logTail, STOP_TIMEOUT_MS, terminateDaemon, type DaemonExit } from "./daemon-process";
import { leasePath } from "../protocol/supervision-lease";
import { isLeaseLive, readLease, writeOwnLease } from "../protocol/io/supervision-lease";
import { RestartPolicy, type RestartPolicyOptions } from "./restart-policy";
import { channelCount, checkPath, sleepTimeMs } from "../shared/settings";
import { pause, untilAborted } from "../shared/pause";
import { directoryProblem, filesFingerprint, logFileProblem, refusalFromLog, type StartProblem } from "./start-problem";

export type SupervisorState = "starting" | "running" | "restarting" | "failed" | "stopped";

export interface SupervisorStatus {
  readonly state: SupervisorState;
  /** The daemon's pid while one is known. */
  readonly pid: number | null;
  /** What the daemon publishes about itself while it runs. */
  readonly info: DaemonInfo | null;
  /** What happened, for people: "adopted daemon pid 42", "…restarting in 200 ms". */
  readonly message: string;
  /**
   * While the daemon cannot start until someone fixes its directory or files (missing, unsafe,
   * not writable, another daemon holds them): the reason and the fix. Null otherwise.
   */
  readonly problem: StartProblem | null;
}

export interface SupervisorOptions {
  readonly commands: string;
  readonly results: string;
  /** Seconds, as the daemon takes it. */
  readonly sleepTime: number;
  readonly channels?: number;
  /** Default `<commands>.log`. */
  readonly logFile?: string;
  /** How long a new daemon may take to serve its files (default 10 s). */
  readonly readyTimeoutMs?: number;
  /** How often an adopted daemon (not our child) is checked (default 1 s). */
  readonly pollMs?: number;
  /** Seconds running commands get to finish when the daemon is stopped (default 5). */
  readonly stopGraceSeconds?: number;
  /**
   * A daemon this supervisor starts stops by itself once no live process has held its lease
   * (`COMMANDS.supervisor`) for this many seconds (default 60): Node-RED stopped and did not
   * come back. Null: it never does (it runs until stopped).
   */
  readonly supervisionGraceSeconds?: number | null;
  readonly restart?: Partial<RestartPolicyOptions>;
}

const READY_POLL_MS = 50;
const ALREADY_RUNNING_GRACE_MS = 2000;
/** How often a supervisor waiting for a fix looks at the directory and files (a few stat calls). */
const FIX_POLL_MS = 500;
export const DEFAULT_SUPERVISION_GRACE_SECONDS = 60;

/** Why no daemon serves: `launched` false when none was even started (the directory is missing). */
interface Failure {
  readonly why: string;
  readonly problem: StartProblem | null;
  readonly launched: boolean;
}

/** One running daemon as the supervisor sees it; `ended` resolves when it stops serving. */
interface Life {
  readonly pid: number;
  readonly info: DaemonInfo;
  readonly ended: Promise<string>;
}

/**
 * Managed mode: keeps one daemon serving the files. Adopts a daemon that already serves them,
 * otherwise starts one (the only process it ever starts), and restarts it with backoff.
 * Emits "state" with a SupervisorStatus on every change.
 */
export class Supervisor extends EventEmitter<{ state: [SupervisorStatus] }> {
  readonly files: DaemonFiles;
  readonly logFile: string;
  /** The supervision lease: names this process while it supervises the daemon. */
  readonly leaseFile: string;
  private readonly channels: number;
  private policy: RestartPolicy;
  private readonly stopping = new AbortController();
  /** A call, not a property read: TypeScript would carry `signal.aborted === false` across awaits. */
  private readonly stopped = (): boolean => this.stopping.signal.aborted;
  /** Fires when a stop's time is nearly up: whatever daemon is being stopped is killed. */
  private readonly killNow = new AbortController();
  private current: SupervisorStatus = { state: "stopped", pid: null, info: null, message: "not started", problem: null };
  /** The last start's refusal the operator can fix; cleared once a daemon serves, or on a retry after a change. */
  private problem: StartProblem | null = null;
  private loop: Promise<void> | null = null;
  private childPid: number | null = null;
  /** How our last child exited (its status), to tell "another daemon serves" from a crash. */
  private lastExitCode: number | null = null;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.files = daemonFiles(checkPath(options.commands, "commands"), checkPath(options.results, "results"));
    sleepTimeMs(options.sleepTime);
    this.channels = channelCount(options.channels ?? 1);
    this.logFile = path.resolve(options.logFile ?? `${this.files.commands}.log`);
    this.leaseFile = leasePath(this.files.commands);
    this.policy = new RestartPolicy(options.restart);
  }

  get status(): SupervisorStatus {
    return this.current;
  }

  /** Starts supervising; resolves once the daemon serves the files, or supervision failed. */
  start(): Promise<SupervisorStatus> {
    if (this.loop !== null) throw new Error("the supervisor was already started");
    const settled = new Promise<SupervisorStatus>((resolve) => {
      const onState = (status: SupervisorStatus) => {
        if (status.state === "starting" || status.state === "restarting") return;
        this.off("state", onState);
        resolve(status);
      };
      this.on("state", onState);
    });
    this.setStatus("starting", null, null, `looking for a daemon serving ${this.files.commands}, or starting one`);
    this.loop = this.supervise().catch((err: unknown) => {
      this.setStatus("failed", null, null, `supervision stopped on an unexpected error: ${err instanceof Error ? err.message : String(err)}`);
    });
    return settled;
  }

  /**
   * Stops supervising, within `timeoutMs` (default STOP_TIMEOUT_MS, 12 s) all in all: a daemon
   * the supervision loop is stopping (replacing it) and, with `killDaemon`, the daemon itself
   * get SIGTERM, and SIGKILL when the time is nearly up. Without `killDaemon` (a redeploy) the
   * daemon keeps running and the lease stays, so the next supervisor in this process adopts it
   * (or, if none comes, the daemon stops after its supervision grace). With it, the lease is
   * removed once the daemon is gone.
   */
  async stop(killDaemon: boolean, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const killTimer = setTimeout(() => this.killNow.abort(), Math.max(0, timeoutMs - KILL_WAIT_MS));
    this.stopping.abort();
    try {
      await this.loop;
      if (killDaemon) {
        const live = liveDaemonOrNull(this.files);
        const target = live?.pid ?? this.childPid;
        if (target !== null) await terminateDaemon(target, live?.startTime ?? null, { timeoutMs: deadline - performance.now(), killNow: this.killNow.signal });
        this.dropLease();
      }
    } finally {
      clearTimeout(killTimer);
    }
    const pid = this.current.pid;
    const message = killDaemon ? "stopped, and the daemon with it" : pid === null ? "stopped supervising" : `stopped supervising; the daemon (pid ${pid}) keeps running`;
    this.setStatus("stopped", killDaemon ? null : pid, null, message);
  }

  private async supervise(): Promise<void> {
    let restarting = false;
    while (!this.stopped()) {
      const attemptStarted = performance.now();
      // Taken before the attempt, so that a fix made while it failed is not missed.
      const fingerprint = filesFingerprint(this.files, this.channels);
      const life = await this.adoptOrLaunch(restarting);
      restarting = true;
      if (this.stopped()) return;
      let why: string;
      let uptimeMs: number;
      if ("why" in life) {
        this.problem = life.problem;
        if (life.problem !== null && !life.launched) {
          // Nothing to start (no directory): no crash to count, only a fix to wait for.
          await this.waitForFix(fingerprint, life.problem.message);
          continue;
        }
        why = life.why;
        uptimeMs = performance.now() - attemptStarted;
      } else {
        const upSince = performance.now();
        why = await untilAborted(life.ended, this.stopping.signal, "");
        if (this.stopped()) return;
        uptimeMs = performance.now() - upSince;
      }
      if (await this.anotherDaemonServes()) continue;
      const decision = this.policy.onDeath(uptimeMs);
      if ("giveUp" in decision) {
        const tail = logTail(this.logFile);
        const message = `gave up on the daemon: ${decision.giveUp}; last it ${why}; ${this.logFile} ends: ${tail || "(empty)"}`;
        if (this.problem === null) {
          this.setStatus("failed", null, null, message);
          return;
        }
        // It refused to start for a reason someone can fix (chmod, mkdir…): no more starts
        // until the directory or the files change, then it starts again on its own.
        await this.waitForFix(fingerprint, message);
        continue;
      }
      this.setStatus("restarting", null, null, `the daemon ${why}; restarting in ${decision.restartInMs} ms`);
      await pause(decision.restartInMs, this.stopping.signal);
    }
  }

  /**
   * Status "failed" with the problem until the directory or the files differ from `before`
   * (polled, a few stat calls), then a fresh restart policy: the next start is at once.
   */
  private async waitForFix(before: string, message: string): Promise<void> {
    this.setStatus("failed", null, null, `${message}; the daemon is started again as soon as ${this.files.directories.join(" or ")} or its files change`);
    while (!this.stopped() && filesFingerprint(this.files, this.channels) === before) await pause(FIX_POLL_MS, this.stopping.signal);
    if (this.stopped()) return;
    this.policy = new RestartPolicy(this.options.restart);
    this.problem = null;
    this.setStatus("restarting", null, null, `${this.files.directories.join(" or ")} or its files changed: trying to start the daemon again`);
  }

  /** A running daemon, or why none could be started. */
  private async adoptOrLaunch(restarting: boolean): Promise<Life | Failure> {
    let live = readLiveDaemon(this.files);
    if (live !== null && !restarting && this.differs(live)) live = await this.replace(live);
    if (this.stopped()) return abandoned();
    this.holdLease();
    if (live !== null) {
      this.setStatus("running", live.pid, live, `adopted the daemon already serving ${this.files.commands} (pid ${live.pid})`);
      return { pid: live.pid, info: live, ended: this.watchAdopted(live) };
    }
    // Before the log is opened there: a missing directory says so, and how to create it.
    const blocked = directoryProblem(this.files);
    if (blocked !== null) return { why: blocked.message, problem: blocked, launched: false };
    if (restarting) this.setStatus("restarting", null, null, `starting a new daemon for ${this.files.commands}`);
    const grace = this.options.supervisionGraceSeconds === undefined ? DEFAULT_SUPERVISION_GRACE_SECONDS : this.options.supervisionGraceSeconds;
    let launched: Awaited<ReturnType<typeof launchDaemon>>;
    try {
      launched = await launchDaemon({
        commands: this.files.commands,
        results: this.files.results,
        sleepTime: this.options.sleepTime,
        channels: this.channels,
        logFile: this.logFile,
        stopGraceSeconds: this.options.stopGraceSeconds ?? 5,
        ...(grace === null ? {} : { supervisedGraceSeconds: grace }),
      });
    } catch (err) {
      // The log could not be opened (the directory is not this user's to write).
      const problem = logFileProblem(err, this.logFile);
      return { why: problem.message, problem, launched: false };
    }
    this.childPid = launched.pid;
    this.lastExitCode = null;
    void launched.exited.then((exit) => {
      this.lastExitCode = exit.code;
      if (this.childPid === launched.pid) this.childPid = null;
    });
    const ready = await this.waitUntilServing(launched.pid, launched.exited);
    if ("why" in ready) return ready;
    this.setStatus("running", ready.pid, ready, `started the daemon (pid ${ready.pid}); log: ${this.logFile}`);
    return { pid: ready.pid, info: ready, ended: this.watchChild(ready, launched.exited) };
  }

  /** Whether a daemon found at start-up runs with other settings than the ones asked for. */
  private differs(live: PublishedInfo): boolean {
    return checkServes(live, this.files) !== null || live.channels !== this.channels || live.sleepTime !== sleepTimeMs(this.options.sleepTime) / 1000;
  }

  /**
   * Managed mode owns the daemon's settings: one left running with other settings (say, the
   * channels were changed and redeployed) is stopped so a new one starts. Null once it is gone.
   */
  private async replace(live: PublishedInfo): Promise<PublishedInfo | null> {
    this.setStatus("starting", live.pid, live, `the daemon pid ${live.pid} serves ${live.results} with ${live.channels} channel(s), sleep ${live.sleepTime} s; replacing it with one for ${this.files.results}, ${this.channels} channel(s), sleep ${this.options.sleepTime} s`);
    await terminateDaemon(live.pid, live.startTime, { killNow: this.killNow.signal });
    const after = readLiveDaemon(this.files);
    // Killed, it left its info and lock behind; a zombie nobody reaps still matches them.
    if (after !== null && after.pid === live.pid && isGone(live.pid, live.startTime)) return null;
    return after;
  }

  /** Names this process in the lease (on start and adoption: a new Node-RED takes it over). */
  private holdLease(): void {
    try {
      writeOwnLease(this.leaseFile);
    } catch {
      // The daemon could not write here either (it would refuse the directory); its own
      // errors say why. Without a lease a daemon we start stops after its grace, and is restarted.
    }
  }

  /**
   * While supervising: a lease that was removed, garbled or names a process that is gone is
   * written again. One naming another live process (another Node-RED adopted the daemon) is left.
   */
  private keepLease(): void {
    if (!isLeaseLive(readLease(this.leaseFile))) this.holdLease();
  }

  /** After the daemon was stopped: the lease goes, if it still names this process. */
  private dropLease(): void {
    if (readLease(this.leaseFile)?.pid !== process.pid) return;
    try {
      fs.rmSync(this.leaseFile, { force: true });
    } catch {
      // Left behind it names a live process but no daemon reads it; the next supervisor rewrites it.
    }
  }

  /** The daemon's info once it serves, or why it does not (with its own reason when it refused). */
  private async waitUntilServing(pid: number | null, exited: Promise<DaemonExit>): Promise<DaemonInfo | Failure> {
    // A holder, not a `let`: TypeScript cannot see the callback assign it and would keep it `null`.
    const seen: { exit: DaemonExit | null } = { exit: null };
    void exited.then((value) => (seen.exit = value));
    const deadline = performance.now() + (this.options.readyTimeoutMs ?? 10_000);
    while (!this.stopped()) {
      if (seen.exit !== null) {
        const last = logTail(this.logFile, 1);
        return { why: `${describeExit(seen.exit)} before it was ready (log: ${last || "empty"})`, problem: refusalFromLog(last), launched: true };
      }
      const live = readLiveDaemon(this.files);
      if (live !== null && live.pid === pid) return live;
      if (performance.now() >= deadline && pid !== null) {
        await terminateDaemon(pid, null, { killNow: this.killNow.signal });
        return { why: `was not serving ${this.files.commands} ${(this.options.readyTimeoutMs ?? 10_000) / 1000} s after it started, so it was stopped`, problem: null, launched: true };
      }
      await pause(READY_POLL_MS, this.stopping.signal);
    }
    return abandoned();
  }

  /**
   * Whether someone else (another Node-RED, systemd, a person) serves the files now, so that
   * daemon is adopted instead of counting a crash. A daemon refused with "already serves" may
   * have met one that holds the lock but has not published its info yet: give it a moment.
   * The CLI says so by its exit status.
   */
  private async anotherDaemonServes(): Promise<boolean> {
    const refused = this.lastExitCode === EXIT.ALREADY_RUNNING;
    const deadline = performance.now() + (refused ? ALREADY_RUNNING_GRACE_MS : 0);
    for (;;) {
      if (readLiveDaemon(this.files) !== null) return true;
      if (performance.now() >= deadline || this.stopped()) return false;
      await pause(READY_POLL_MS, this.stopping.signal);
    }
  }

  /**
   * Resolves when our own child exits. The exit event says how; the poll is a fallback that
   * also keeps this process's event loop alive while it supervises an unref()-ed child.
   */
  private async watchChild(info: DaemonInfo, exited: Promise<DaemonExit>): Promise<string> {
    // A holder, not a `let`: TypeScript cannot see the callback assign it and would keep it `null`.
    const seen: { exit: DaemonExit | null } = { exit: null };
    void exited.then((value) => (seen.exit = value));
    while (!this.stopped()) {
      await Promise.race([exited, pause(this.options.pollMs ?? 1000, this.stopping.signal)]);
      if (seen.exit !== null) return describeExit(seen.exit);
      if (isGone(info.pid, info.startTime)) return `pid ${info.pid} is gone`;
      this.keepLease();
    }
    return "";
  }

  /** Resolves when an adopted daemon (maybe not our child) stops serving the files. */
  private async watchAdopted(info: DaemonInfo): Promise<string> {
    while (!this.stopped()) {
      await pause(this.options.pollMs ?? 1000, this.stopping.signal);
      const live = readLiveDaemon(this.files);
      if (live === null || live.pid !== info.pid) return `pid ${info.pid} stopped serving ${this.files.commands}`;
      this.keepLease();
    }
    return "";
  }

  private setStatus(state: SupervisorState, pid: number | null, info: DaemonInfo | null, message: string): void {
    if (state === "running") this.problem = null;
    const problem = state === "running" || state === "stopped" ? null : this.problem;
    this.current = { state, pid, info, message, problem };
    this.emit("state", this.current);
  }
}

function abandoned(): Failure {
  return { why: "was abandoned: supervision stopped", problem: null, launched: false };
}

function describeExit(exit: DaemonExit): string {
  return exit.description.startsWith("could not") ? exit.description : `exited (${exit.description})`;
}

/** The live daemon, or null also when its files cannot be read now (stopping must go on). */
function liveDaemonOrNull(files: DaemonFiles): PublishedInfo | null {
  try {
    return readLiveDaemon(files);
  } catch {
    return null;
  }
}
