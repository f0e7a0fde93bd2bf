import fs from "node:fs";
import path from "node:path";
import { FileDaemonError } from "../protocol/errors";
import { isDetachedStage, notifyLauncher, RUN_USAGE, runDaemonCli, wasLogged } from "./cli-daemon";
import { LineLogger } from "./log";
import { STATUS_USAGE, statusCli, SUBMIT_USAGE, submitCli } from "./cli-client";

const USAGE = `file-daemon: run shell commands for programs that must not fork themselves.

  file-daemon RESULTS COMMANDS [SLEEP_TIME]   run the daemon (see: file-daemon run --help)
  file-daemon submit -c C -r R -- COMMAND     run COMMAND through it, exit with its status
  file-daemon status -c C -r R                is a daemon serving these files?

${RUN_USAGE}
${SUBMIT_USAGE}
${STATUS_USAGE}`;

/**
 * Exit codes: the command's own for submit; 0 ok, 1 runtime failure, 2 usage, 3 not running.
 * An error message ends with its code in brackets (`… [ALREADY_RUNNING]`), a stable marker that
 * programs (the supervisor) match instead of the wording.
 */
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
    const line = err instanceof FileDaemonError ? `${message} [${err.code}]` : message;
    if (isDetachedStage(args)) notifyLauncher(`error ${line}\n`);
    const daemonRun = first !== "submit" && first !== "status";
    // A daemon that cannot start says why in its --log too, where its operator looks.
    const loggedToStderr = daemonRun && !wasLogged(err) && logStartupError(args, line);
    if (!loggedToStderr) process.stderr.write(`file-daemon: ${line}\n`);
    if (first === "submit") return 125;
    const usage = err instanceof FileDaemonError ? err.code === "BAD_OPTION" || err.code === "BAD_COMMAND" : err instanceof TypeError;
    if (err instanceof FileDaemonError && err.code === "ALREADY_RUNNING") return 1;
    return usage ? 2 : 1;
  }
}

/** The value of --log in `args` (read leniently: the error may be that the options are bad). */
function logOption(args: string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") break;
    if (arg.startsWith("--log=")) return arg.slice(6) || null;
    if (arg === "--log" && i + 1 < args.length) return args[i + 1] as string;
  }
  return null;
}

/** Appends `line` to the --log file; true when that file is this process's stderr too. */
function logStartupError(args: string[], line: string): boolean {
  const file = logOption(args);
  if (file === null) return false;
  let sameAsStderr = false;
  try {
    const stderr = fs.fstatSync(2);
    const log = fs.statSync(file);
    sameAsStderr = stderr.dev === log.dev && stderr.ino === log.ino;
  } catch {
    // No such log yet, or no stderr: write to both.
  }
  try {
    const logger = new LineLogger(path.resolve(file));
    logger.error(line);
    logger.close();
    return sameAsStderr;
  } catch {
    return false;
  }
}
