export { submitCommand, CommandFailedError, type CommandResult, type SubmitOptions } from "./engine/client";
export { Daemon, type DaemonOptions } from "./engine/daemon";
export { FileDaemonError, type FileDaemonErrorCode } from "./protocol/errors";
export { MAX_COMMAND_BYTES } from "./protocol/command-line";
export { DEFAULT_CAPTURE_LIMIT } from "./engine/run-command";
export { readLiveDaemon } from "./protocol/daemon-info";
export { daemonFiles } from "./protocol/paths";
