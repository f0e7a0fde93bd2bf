import type { Allowlist } from "./allowlist";
import type { Node, NodeStatus, Translate } from "./node-red-types";

/** The daemon's health as exec nodes see it, in managed or external mode. */
export type DaemonState = "unknown" | "starting" | "running" | "restarting" | "failed" | "stopped" | "down";

export interface DaemonHealth {
  readonly state: DaemonState;
  readonly pid: number | null;
  /** How many commands the daemon runs at once: an exec node's concurrency. */
  readonly channels: number;
  readonly message: string;
}

/** What a `file-daemon` config node offers the `file-daemon-exec` nodes that use it. */
export interface DaemonConnection {
  readonly commandsFile: string;
  readonly resultsFile: string;
  /** Seconds, as submitCommand takes it. */
  readonly sleepTime: number;
  readonly health: DaemonHealth;
  /** Commands the exec nodes may send; null allows every command. */
  readonly allowlist: Allowlist | null;
  /** Seconds a submission may wait for the daemon to (re)appear before it fails. */
  daemonWaitSeconds(): number;
  /** Calls `listener` on every health change; returns the unsubscribe function. */
  subscribe(listener: (health: DaemonHealth) => void): () => void;
}

/** The config node object carries its connection under this property. */
export interface FileDaemonConfigNode extends Node {
  fileDaemon?: DaemonConnection;
}

export function connectionOf(node: Node | null): DaemonConnection | null {
  return (node as FileDaemonConfigNode | null)?.fileDaemon ?? null;
}

/** The status an exec node shows for the daemon while it has nothing else to say. */
export function healthStatus(health: DaemonHealth, t: Translate): NodeStatus {
  switch (health.state) {
    case "unknown":
      return {};
    case "running":
      return { fill: "green", shape: "ring", text: t("file-daemon-exec.status.daemonRunning") };
    case "starting":
      return { fill: "yellow", shape: "ring", text: t("file-daemon-exec.status.daemonStarting") };
    case "restarting":
      return { fill: "yellow", shape: "ring", text: t("file-daemon-exec.status.daemonRestarting") };
    case "failed":
      return { fill: "red", shape: "ring", text: t("file-daemon-exec.status.daemonFailed") };
    case "stopped":
    case "down":
      return { fill: "red", shape: "ring", text: t("file-daemon-exec.status.daemonDown") };
  }
}
