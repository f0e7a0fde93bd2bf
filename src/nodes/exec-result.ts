import type { CommandResult } from "../engine/client";
import type { NodeMessage, NodeStatus } from "./node-red-types";

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
export class NonZeroExitError extends Error {
  readonly code = "NON_ZERO_EXIT";

  constructor(result: CommandResult) {
    super(result.signal !== null ? `the command was ended by ${result.signal}` : `the command exited with code ${result.code}`);
    this.name = "NonZeroExitError";
  }
}

export function resultStatus(result: CommandResult): NodeStatus {
  if (result.signal !== null && result.code === null) return { fill: "yellow", shape: "dot", text: `signal ${result.signal}` };
  return { fill: result.code === 0 ? "green" : "yellow", shape: "dot", text: `exit ${result.code}` };
}

/** Short words for failures, by error code (under 20 characters each). */
const FAILURE_TEXT: Record<string, string> = {
  TIMEOUT: "timeout",
  KILLED: "killed",
  ABORTED: "withdrawn",
  INTERRUPTED: "interrupted",
  BAD_COMMAND: "bad input",
  BAD_OPTION: "bad input",
  QUEUE_FULL: "queue full",
  NOT_ALLOWED: "not allowed",
  NON_ZERO_EXIT: "exit non-zero",
};

export function failureStatus(err: unknown, result: CommandResult | null): NodeStatus {
  const code = errorCode(err);
  if (code === "DAEMON_NOT_RUNNING" || code === "DAEMON_DIED") return { fill: "red", shape: "ring", text: "daemon down" };
  if (code === "NON_ZERO_EXIT" && result !== null) return { ...resultStatus(result), fill: "red" };
  return { fill: "red", shape: "dot", text: FAILURE_TEXT[code] ?? code.toLowerCase().replace(/_/g, " ").slice(0, 19) };
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "ERROR";
}
