import type { FileDaemonErrorCode } from "./errors";
import type { ResultStatus } from "./result-record";

/**
 * Result → caller (PROTOCOL.md §5): `exited` and `signaled` are results; every other status is
 * a failure that still carries the result, reported with this error code.
 */
export const FAILURE_CODES: Readonly<Record<ResultStatus, FileDaemonErrorCode | null>> = {
  exited: null,
  signaled: null,
  timeout: "TIMEOUT",
  killed: "KILLED",
  interrupted: "INTERRUPTED",
  failed: "SPAWN_FAILED",
  refused: "BAD_COMMAND",
};
