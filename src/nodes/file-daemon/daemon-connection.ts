import type { StartProblem } from "../../supervisor/start-problem";
import { FileDaemonError } from "../../protocol/errors";
import type { Allowlist } from "../../shared/allowlist";
import type { DaemonActivity } from "./daemon-activity";
import type { Node, NodeStatus, Translate } from "../node-red-types";

/** The daemon's health as exec nodes see it, in managed or external mode. */
export type DaemonState = "unknown" | "starting" | "running" | "restarting" | "failed" | "stopped" | "down";

export interface DaemonHealth {
  readonly state: DaemonState;
  readonly pid: number | null;
  /** How many commands the daemon runs at once: an exec node's concurrency. */
  readonly channels: number;
  readonly message: string;
  /** Managed mode: why the daemon cannot start until someone fixes it, and the status's short text. */
  readonly problem?: DaemonProblem | null;
}

export interface DaemonProblem extends StartProblem {
  /** The locale key of its status text (at most 20 characters: "no directory", "unsafe dir"…). */
  readonly status: string;
}

/** The locale key of the short status text for a start problem of a daemon whose files are in `directories`. */
export function problemStatusKey(problem: StartProblem, directories: readonly string[]): string {
  switch (problem.code) {
    case "NO_DIRECTORY":
      return "file-daemon-exec.status.noDirectory";
    case "UNSAFE_FILES":
      // The daemon names each unsafe path first: "DIR is writable by every user…", "DIR belongs to…".
      return directories.some((dir) => problem.message.includes(`${dir} is `) || problem.message.includes(`${dir} belongs `))
        ? "file-daemon-exec.status.unsafeDir"
        : "file-daemon-exec.status.unsafeFiles";
    case "PERMISSION":
      return "file-daemon-exec.status.noPermission";
    case "ALREADY_RUNNING":
      return "file-daemon-exec.status.alreadyRunning";
    default:
      return "file-daemon-exec.status.daemonFailed";
  }
}

/**
 * The error a message fails with while the daemon cannot start: the problem's own reason and
 * fix (code NO_DIRECTORY, UNSAFE_FILES…) instead of "no daemon served". Null when `err` is not
 * a missing daemon (or the same cause as the submitter met it), or no such problem is known.
 */
export function daemonProblemError(health: DaemonHealth, err: unknown): FileDaemonError | null {
  const problem = health.problem;
  if (problem === undefined || problem === null || health.state === "running") return null;
  // The submitter finds no daemon, or meets the same cause itself (no directory: its own words).
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== "DAEMON_NOT_RUNNING" && code !== problem.code) return null;
  return new FileDaemonError(problem.code, problem.message, { cause: err });
}

/** What a `file-daemon` config node offers the `file-daemon-exec` nodes that use it. */
export interface DaemonConnection {
  /** Managed: Node-RED starts and supervises the daemon; external: it only watches it. */
  readonly mode: "managed" | "external";
  readonly commandsFile: string;
  readonly resultsFile: string;
  /** Seconds, as submitCommand takes it. */
  readonly sleepTime: number;
  readonly health: DaemonHealth;
  /** Commands the exec nodes may send; null allows every command. */
  readonly allowlist: Allowlist | null;
  /**
   * Set while the files must not be touched at all (the default directory could not be made,
   * or is not ours alone): every message fails with it, and nothing is written.
   */
  readonly refusal: FileDaemonError | null;
  /** Seconds a submission may wait for the daemon to (re)appear before it fails. */
  daemonWaitSeconds(): number;
  /** What the exec nodes are doing with this daemon, for the editor's sidebar. */
  readonly activity: DaemonActivity;
  /** Calls `listener` on every health change; returns the unsubscribe function. */
  subscribe(listener: (health: DaemonHealth) => void): () => void;
}

/** The config node object carries its connection under this property. */
export interface FileDaemonConfigNode extends Node {
  fileDaemon?: DaemonConnection;
}

/** The connection of a config node; null for none, or for a node that is no file-daemon config node (it has no `fileDaemon`). */
export function connectionOf(node: FileDaemonConfigNode | null): DaemonConnection | null {
  return node?.fileDaemon ?? null;
}

/** The status an exec node shows for the daemon while it has nothing else to say. */
export function healthStatus(health: DaemonHealth, t: Translate): NodeStatus {
  if (health.problem !== undefined && health.problem !== null && health.state !== "running") return { fill: "red", shape: "ring", text: t(health.problem.status) };
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
