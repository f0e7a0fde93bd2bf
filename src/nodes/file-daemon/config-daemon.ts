import path from "node:path";
import { stopLiveDaemon } from "../../supervisor/daemon-process";
import { ExternalWatcher, type ExternalStatus } from "../../supervisor/external-watcher";
import { Supervisor, type SupervisorStatus } from "../../supervisor/supervisor";
import { daemonFiles } from "../../protocol/paths";
import { FileDaemonError } from "../../protocol/errors";
import { ensureDefaultDirectory } from "../../shared/default-directory";
import { pause } from "../../shared/pause";
import type { Allowlist } from "../../shared/allowlist";
import { healthStatus, problemStatusKey, type DaemonConnection, type DaemonHealth } from "./daemon-connection";
import { DaemonActivity } from "./daemon-activity";
import { claim, leaveRunning } from "./daemon-handover";
import type { DaemonSettings } from "./daemon-settings";
import type { Node, NodeAPI } from "../node-red-types";

/** Seconds a message waits for a daemon that is (re)starting, or briefly gone, in either mode. */
const MANAGED_DAEMON_WAIT = 10;
const EXTERNAL_DAEMON_WAIT = 2;
/** All the time `close` may take; Node-RED reports a close that takes over 15 s as failed. */
const CLOSE_TIMEOUT_MS = 12_000;
/** How often a default directory that could not be used is tried again (a mkdir, an lstat). */
const DIRECTORY_RETRY_MS = 1000;

/**
 * What a `file-daemon` config node does: in managed mode a Supervisor keeps a daemon running,
 * in external mode an ExternalWatcher only looks at it; either way the health is logged and
 * passed on to every exec node that subscribed. With empty paths the files are in the default
 * directory, made (or checked) first: until it is usable, neither starts, nothing reads or
 * writes the files, and every message fails with the reason.
 */
export class ConfigDaemon implements DaemonConnection {
  private current: DaemonHealth;
  private readonly listeners = new Set<(health: DaemonHealth) => void>();
  private supervisor: Supervisor | null = null;
  private watcher: ExternalWatcher | null = null;
  /** Why the default directory must not be used (yet); null once it is, or with named files. */
  private refused: FileDaemonError | null = null;
  private readonly closing = new AbortController();
  /** A call, not a property read: TypeScript would carry `signal.aborted === false` across awaits. */
  private readonly closed = (): boolean => this.closing.signal.aborted;
  /** The retries of a default directory that was not usable at the start. */
  private readonly waiting: Promise<void> | null = null;
  readonly activity = new DaemonActivity();

  constructor(
    private readonly RED: NodeAPI,
    private readonly node: Node,
    private readonly settings: DaemonSettings,
  ) {
    this.current =
      settings.mode === "managed"
        ? { state: "starting", pid: null, channels: settings.channels, message: "not started yet" }
        : { state: "unknown", pid: null, channels: 1, message: "not checked yet" };
    this.activity.healthChanged(this.current);
    const dir = settings.defaultDirectory;
    if (dir === null || this.directoryReady(dir)) this.startDaemon();
    else this.waiting = this.waitForDirectory(dir);
  }

  private startDaemon(): void {
    const { settings } = this;
    if (settings.mode === "managed") {
      claim(settings.commandsFile);
      const supervisor = new Supervisor({ commands: settings.commandsFile, results: settings.resultsFile, sleepTime: settings.sleepTime, channels: settings.channels });
      this.supervisor = supervisor;
      supervisor.on("state", (status) => this.onManaged(status));
      // Detached on purpose (the status arrives as "state" events); it never rejects: the promise
      // only resolves, and start() catches whatever the supervision loop throws.
      void supervisor.start();
    } else {
      const watcher = new ExternalWatcher(settings.commandsFile, settings.resultsFile);
      this.watcher = watcher;
      this.current = { state: "unknown", pid: null, channels: 1, message: "not checked yet" };
      watcher.on("state", (status) => this.onExternal(status));
      watcher.start();
    }
  }

  /**
   * Whether the default directory is usable now (made, or found private). If not: the status
   * and every message say why, and the log does once per reason.
   */
  private directoryReady(dir: string): boolean {
    try {
      ensureDefaultDirectory(dir);
    } catch (err) {
      const error = err instanceof FileDaemonError ? err : new FileDaemonError("IO", `cannot use the default directory ${dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      const repeated = this.refused?.message === error.message;
      this.refused = error;
      if (repeated) return false;
      const then = this.settings.mode === "managed" ? "the daemon starts" : "the daemon is looked for";
      this.node.error(`${error.message}. The directory is tried again every ${DIRECTORY_RETRY_MS / 1000} s; ${then} once it is usable`);
      const problem = { code: error.code, message: error.message, status: problemStatusKey(error, [dir, path.dirname(dir)]) };
      this.update({ state: "failed", pid: null, channels: this.settings.channels, message: error.message, problem });
      return false;
    }
    if (this.refused !== null) this.node.log(`the default directory ${dir} is usable now`);
    this.refused = null;
    return true;
  }

  private async waitForDirectory(dir: string): Promise<void> {
    while (!this.closed()) {
      await pause(DIRECTORY_RETRY_MS, this.closing.signal);
      if (this.closed()) return;
      if (this.directoryReady(dir)) {
        this.startDaemon();
        return;
      }
    }
  }

  get mode(): DaemonSettings["mode"] {
    return this.settings.mode;
  }

  get commandsFile(): string {
    return this.settings.commandsFile;
  }

  get resultsFile(): string {
    return this.settings.resultsFile;
  }

  get sleepTime(): number {
    return this.settings.sleepTime;
  }

  get allowlist(): Allowlist | null {
    return this.settings.allowlist;
  }

  get health(): DaemonHealth {
    return this.current;
  }

  get refusal(): FileDaemonError | null {
    return this.refused;
  }

  daemonWaitSeconds(): number {
    const { state, problem } = this.current;
    // Waiting would not help: the directory or its files must be fixed first.
    if (state === "failed" || state === "stopped" || state === "down" || (problem !== undefined && problem !== null)) return 0;
    return this.settings.mode === "managed" ? MANAGED_DAEMON_WAIT : EXTERNAL_DAEMON_WAIT;
  }

  subscribe(listener: (health: DaemonHealth) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Removed (the config node was deleted): a managed daemon is stopped. Not removed (a
   * redeploy, flows restarted, Node-RED stopping): it keeps running so the next instance adopts
   * it without dropping a command; if no instance claims these files once the new flows have
   * started (the paths were edited), it is stopped then. If Node-RED itself stops and does not
   * come back within a minute, the daemon stops by itself (its lease, COMMANDS.supervisor).
   * Under systemd, stopping Node-RED kills the daemon with it (KillMode=control-group).
   */
  async close(removed: boolean): Promise<void> {
    this.listeners.clear();
    this.closing.abort();
    await this.waiting;
    if (this.watcher !== null) return this.watcher.stop();
    if (this.supervisor === null) return;
    // One time limit for every step of the stop (a daemon being replaced, then ours), well
    // inside the 15 s Node-RED gives a node to close.
    await this.supervisor.stop(removed, CLOSE_TIMEOUT_MS);
    if (removed) return;
    const { commandsFile, resultsFile } = this.settings;
    leaveRunning(this.RED, commandsFile, {
      stop: async () => {
        const pid = await stopLiveDaemon(daemonFiles(commandsFile, resultsFile));
        if (pid !== null) this.node.log(`stopped the daemon pid ${pid}: no file-daemon config node uses ${commandsFile} any more`);
      },
    });
  }

  private onManaged(status: SupervisorStatus): void {
    const channels = status.info?.channels ?? this.settings.channels;
    const directories = this.supervisor?.files.directories ?? [];
    const problem = status.problem === null ? null : { ...status.problem, status: problemStatusKey(status.problem, directories) };
    this.update({ state: status.state, pid: status.pid, channels, message: status.message, problem });
    if (status.state === "restarting") this.node.warn(status.message);
    // With a problem the supervisor keeps watching and says so; otherwise it gave up for good.
    else if (status.state === "failed") this.node.error(problem !== null ? status.message : `${status.message}. Fix the cause, then redeploy to try again`);
    else this.node.log(status.message);
  }

  private onExternal(status: ExternalStatus): void {
    const channels = status.info?.channels ?? 1;
    this.update({ state: status.state, pid: status.pid, channels, message: status.message });
    if (status.state === "down") this.node.warn(status.message);
    else this.node.log(status.message);
  }

  private update(health: DaemonHealth): void {
    this.current = health;
    this.activity.healthChanged(health);
    // The config node's catalog holds the same health texts under its own name (Node-RED looks keys up per node file).
    this.node.status(healthStatus(health, (key, vars) => this.RED._(key.replace(/^file-daemon-exec\./, "file-daemon."), vars)));
    for (const listener of this.listeners) listener(health);
  }
}
