/** Every failure the engine reports carries one of these codes in `error.code`. */
export type FileDaemonErrorCode =
  | "BAD_COMMAND" // the command is not a usable single-line string
  | "BAD_OPTION" // an option (paths, sleep time, timeout…) is out of range
  | "NO_DIRECTORY" // the directory holding the files does not exist
  | "PERMISSION" // a file or lock could not be read or written
  | "UNSAFE_FILES" // files others can write, or symlinks, where the daemon acts
  | "DAEMON_NOT_RUNNING" // no live daemon serves these files
  | "DAEMON_DIED" // the daemon died while the command ran; outcome unknown
  | "ALREADY_RUNNING" // a second daemon was started on the same files
  | "TIMEOUT" // the command ran past its timeout and was killed
  | "KILLED" // the command was killed on request
  | "ABORTED" // the submitter gave up (abort signal) before a result
  | "INTERRUPTED" // the daemon restarted while the command ran
  | "SPAWN_FAILED" // the shell could not be started
  | "LOST" // the command vanished before it ran (see PROTOCOL.md, double lock holders)
  | "INCOMPATIBLE" // the daemon speaks another protocol version
  | "IO" // any other file system error
  // Raised by the Node-RED nodes, in the same family so that a Catch node sees one shape:
  | "NOT_ALLOWED" // the allowlist or the admin's settings forbid the command
  | "NON_ZERO_EXIT" // failOnNonZero: the command ended with another status than 0
  | "QUEUE_FULL" // the node's queue of waiting messages is full
  | "QUEUE_CLOSED" // the node was closed (redeploy, stop) before the command ran
  | "UNSUPPORTED_NODE"; // Node.js is older than the package needs

const CODES: ReadonlySet<string> = new Set<FileDaemonErrorCode>([
  "BAD_COMMAND", "BAD_OPTION", "NO_DIRECTORY", "PERMISSION", "UNSAFE_FILES", "DAEMON_NOT_RUNNING", "DAEMON_DIED", "ALREADY_RUNNING",
  "TIMEOUT", "KILLED", "ABORTED", "INTERRUPTED", "SPAWN_FAILED", "LOST", "INCOMPATIBLE", "IO",
  "NOT_ALLOWED", "NON_ZERO_EXIT", "QUEUE_FULL", "QUEUE_CLOSED", "UNSUPPORTED_NODE",
]);

export function isErrorCode(code: unknown): code is FileDaemonErrorCode {
  return typeof code === "string" && CODES.has(code);
}

export class FileDaemonError extends Error {
  readonly code: FileDaemonErrorCode;

  constructor(code: FileDaemonErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FileDaemonError";
    this.code = code;
  }
}

/** Maps a file system error on `path` to a FileDaemonError that says what to do. */
export function fromFsError(err: unknown, path: string, doing: string): FileDaemonError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") {
    return new FileDaemonError("NO_DIRECTORY", `${doing} ${path}: the directory does not exist; create it or fix the path`, { cause: err });
  }
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new FileDaemonError("PERMISSION", `${doing} ${path}: permission denied (${code}); make the directory writable by this user`, { cause: err });
  }
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new FileDaemonError("IO", `${doing} ${path}: the disk is full (${code}); free some space`, { cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new FileDaemonError("IO", `${doing} ${path}: ${detail}`, { cause: err });
}
