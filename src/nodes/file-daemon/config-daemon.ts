import { stopLiveDaemon } from "../../supervisor/daemon-process";
import { ExternalWatcher, type ExternalStatus } from "../../supervisor/external-watcher";
import { Supervisor, type SupervisorStatus } from "../../supervisor/supervisor";
import { daemonFiles } from "../../protocol/paths";
import type { Allowlist } from "./allowlist";
import { healthStatus, problemStatusKey, type DaemonConnection, type DaemonHealth } from "./daemon-connection";
import { claim, leaveRunning } from "./daemon-handover";
import type { DaemonSettings } from "./daemon-settings";
import type { Node, NodeAPI } from "../node-red-types";

/** Seconds a message waits for a daemon that is (re)starting, or briefly gone, in either mode. */
const MANAGED_DAEMON_WAIT = 10;
const EXTERNAL_DAEMON_WAIT = 2;
/** All the time `close` may take; Node-RED reports a close that takes over 15 s as failed. */
const CLOSE_TIMEOUT_MS = 12_000;

/**
 * What a `file-daemon` config node does: in managed mode a Supervisor keeps a daemon running,
 * in external mode an ExternalWatcher only looks at it; either way the health is logged and
 * passed on to every exec node that subscribed.
 */
export class ConfigDaemon implements DaemonConnection {
  private current: DaemonHealth;
  private readonly listeners = new Set<(health: DaemonHealth) => void>();
  private readonly supervisor: Supervisor | null = null;
  private readonly watcher: ExternalWatcher | null = null;

  constructor(
    private readonly RED: NodeAPI,
    private readonly node: Node,
    private readonly settings: DaemonSettings,
  ) {
    this.current = { state: "starting", pid: null, channels: settings.channels, message: "not started yet" };
    if (settings.mode === "managed") {
      claim(settings.commandsFile);
      this.supervisor = new Supervisor({ commands: settings.commandsFile, results: settings.resultsFile, sleepTime: settings.sleepTime, channels: settings.channels });
      this.supervisor.on("state", (status) => this.onManaged(status));
      // Detached on purpose (the status arrives as "state" events); it never rejects: the promise
      // only resolves, and start() catches whatever the supervision loop throws.
      void this.supervisor.start();
    } else {
      this.watcher = new ExternalWatcher(settings.commandsFile, settings.resultsFile);
      this.current = { state: "unknown", pid: null, channels: 1, message: "not checked yet" };
      this.watcher.on("state", (status) => this.onExternal(status));
      this.watcher.start();
    }
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
    // The config node's catalog holds the same health texts under its own name (Node-RED looks keys up per node file).
    this.node.status(healthStatus(health, (key, vars) => this.RED._(key.replace(/^file-daemon-exec\./, "file-daemon."), vars)));
    for (const listener of this.listeners) listener(health);
  }
}
