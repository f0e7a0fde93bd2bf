import { FileDaemonError } from "../../protocol/errors";
import type { CommandResult } from "../../client/submit";
import type { NodeMessage, NodeStatus, Translate } from "../node-red-types";

/** `msg.rc` in the core exec node's format: `{code: 0}`, or `{code, signal?, message}`. */
export interface ReturnCode {
  code: number | null;
  signal?: string;
  message?: string;
}

export function returnCode(result: CommandResult): ReturnCode {
  if (result.status === "exited" && result.code === 0) return { code: 0 };
  const rc: ReturnCode = { code: result.code };
  if (result.signal !== null) rc.signal = result.signal;
  rc.message = result.message ?? (result.signal !== null ? `the command was ended by ${result.signal}` : `the command exited with code ${result.code}`);
  return rc;
}

/** Puts the result on the message: payload = exit code, rc, and stdout/stderr when captured. */
export function applyResult(msg: NodeMessage, result: CommandResult, capture: boolean): void {
  msg.payload = result.code;
  msg.rc = returnCode(result);
  if (capture) {
    msg.stdout = result.stdout?.toString("utf8") ?? "";
    msg.stderr = result.stderr?.toString("utf8") ?? "";
  }
}

/** True when the command ended by itself with a non-zero code or a signal. */
export function isNonZero(result: CommandResult): boolean {
  return result.code !== 0;
}

/** A non-zero exit reported as an error because the node is set to ("failOnNonZero"). */
export class NonZeroExitError extends FileDaemonError {
  constructor(result: CommandResult) {
    super("NON_ZERO_EXIT", result.signal !== null ? `the command was ended by ${result.signal}` : `the command exited with code ${result.code}`);
    this.name = "NonZeroExitError";
  }
}

export function resultStatus(result: CommandResult, t: Translate): NodeStatus {
  if (result.signal !== null && result.code === null) return { fill: "yellow", shape: "dot", text: t("file-daemon-exec.status.signal", { signal: result.signal }) };
  return { fill: result.code === 0 ? "green" : "yellow", shape: "dot", text: t("file-daemon-exec.status.exit", { code: String(result.code) }) };
}

/** Short words for failures, by error code: keys of the locale (each text under 20 characters). */
const FAILURE_TEXT: Record<string, string> = {
  TIMEOUT: "file-daemon-exec.status.timeout",
  KILLED: "file-daemon-exec.status.killed",
  ABORTED: "file-daemon-exec.status.withdrawn",
  INTERRUPTED: "file-daemon-exec.status.interrupted",
  LOST: "file-daemon-exec.status.lost",
  BAD_COMMAND: "file-daemon-exec.status.badInput",
  BAD_OPTION: "file-daemon-exec.status.badInput",
  QUEUE_FULL: "file-daemon-exec.status.queueFull",
  QUEUE_CLOSED: "file-daemon-exec.status.closed",
  NOT_ALLOWED: "file-daemon-exec.status.notAllowed",
  NO_DIRECTORY: "file-daemon-exec.status.noDirectory",
  PERMISSION: "file-daemon-exec.status.permission",
  SPAWN_FAILED: "file-daemon-exec.status.spawnFailed",
  INCOMPATIBLE: "file-daemon-exec.status.incompatible",
  IO: "file-daemon-exec.status.io",
  DAEMON_NOT_RUNNING: "file-daemon-exec.status.daemonDown",
  DAEMON_DIED: "file-daemon-exec.status.daemonDown",
};

export function failureStatus(err: unknown, result: CommandResult | null, t: Translate): NodeStatus {
  const code = errorCode(err);
  if (code === "DAEMON_NOT_RUNNING" || code === "DAEMON_DIED") return { fill: "red", shape: "ring", text: t("file-daemon-exec.status.daemonDown") };
  if (code === "NON_ZERO_EXIT" && result !== null) return { ...resultStatus(result, t), fill: "red" };
  return { fill: "red", shape: "dot", text: t(FAILURE_TEXT[code] ?? "file-daemon-exec.status.error") };
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "ERROR";
}
