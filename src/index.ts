export { submitCommand, CommandFailedError, type CommandResult, type SubmitOptions } from "./client/submit";
export { Daemon, type DaemonOptions } from "./daemon/daemon";
export { FileDaemonError, type FileDaemonErrorCode } from "./protocol/errors";
export { MAX_COMMAND_BYTES } from "./protocol/limits";
export { DEFAULT_CAPTURE_LIMIT } from "./protocol/limits";
export { readLiveDaemon } from "./protocol/io/live-daemon";
export { daemonFiles } from "./protocol/paths";
