import { FileDaemonError } from "../protocol/errors";
import { isDetachedStage, notifyLauncher, RUN_USAGE, runDaemonCli } from "./cli-daemon";
import { STATUS_USAGE, statusCli, SUBMIT_USAGE, submitCli } from "./cli-client";

const USAGE = `file-daemon: run shell commands for programs that must not fork themselves.

  file-daemon RESULTS COMMANDS [SLEEP_TIME]   run the daemon (see: file-daemon run --help)
  file-daemon submit -c C -r R -- COMMAND     run COMMAND through it, exit with its status
  file-daemon status -c C -r R                is a daemon serving these files?

${RUN_USAGE}
${SUBMIT_USAGE}
${STATUS_USAGE}`;

/** Exit codes: the command's own for submit; 0 ok, 1 runtime failure, 2 usage, 3 not running. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      process.stdout.write(USAGE);
      return first === undefined ? 2 : 0;
    }
    if (first === "submit") return await submitCli(rest);
    if (first === "status") return await statusCli(rest);
    return await runDaemonCli(first === "run" ? rest : args);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (isDetachedStage(args)) notifyLauncher(`error ${message}\n`);
    process.stderr.write(`file-daemon: ${message}\n`);
    if (first === "submit") return 125;
    const usage = err instanceof FileDaemonError ? err.code === "BAD_OPTION" || err.code === "BAD_COMMAND" : err instanceof TypeError;
    if (err instanceof FileDaemonError && err.code === "ALREADY_RUNNING") return 1;
    return usage ? 2 : 1;
  }
}
