export { submitCommand, CommandFailedError, type CommandResult, type SubmitOptions } from "./client/submit";
export { Daemon, type DaemonOptions } from "./daemon/daemon";
export { FileDaemonError, type FileDaemonErrorCode } from "./protocol/errors";
export { MAX_COMMAND_BYTES } from "./protocol/command-line";
export { DEFAULT_CAPTURE_LIMIT } from "./daemon/run-command";
export { readLiveDaemon } from "./protocol/daemon-info";
export { daemonFiles } from "./protocol/paths";
