import fs from "node:fs";
import path from "node:path";
import { EXIT } from "../shared/exit-status";
import { FileDaemonError } from "../protocol/errors";
import { isDetachedStage, notifyLauncher, RUN_USAGE, runDaemonCli, wasLogged } from "./run-daemon";
import { LineLogger } from "../shared/log";
import { fromParseArgsError, STATUS_USAGE, statusCli, SUBMIT_USAGE, submitCli, submitFailureStatus } from "./submit";

const USAGE = `file-daemon: run shell commands for programs that must not fork themselves.

  file-daemon RESULTS COMMANDS [SLEEP_TIME]   run the daemon (see: file-daemon run --help)
  file-daemon submit -c C -r R -- COMMAND     run COMMAND through it, exit with its status
  file-daemon status -c C -r R                is a daemon serving these files?
  file-daemon help [run|submit|status]        show this help, or one command's

${RUN_USAGE}
${SUBMIT_USAGE}
${STATUS_USAGE}`;

const COMMANDS = ["run", "submit", "status", "help"] as const;
const HELP = new Map([["run", RUN_USAGE], ["submit", SUBMIT_USAGE], ["status", STATUS_USAGE]]);

/** Options only `submit` and `status` take: after a word that is no command, a mistyped one. */
const CLIENT_OPTION = /^(-[crst]|--(commands|results|sleep|timeout|output|wait)(=.*)?)$/;

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      // Every index read here was written (row has b.length + 1 entries, next up to j - 1).
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * `first` when it was meant as a command but is none: the daemon's form takes file paths
 * where commands go, so a typo (`sumbit -c C -r R`) would otherwise read as a daemon started
 * on a file named "sumbit" and fail on "-c". It is a mistyped command when options of
 * submit/status follow it, or when it is a near miss of submit/status and no such file exists.
 */
function mistypedCommand(first: string, rest: string[]): string | null {
  if (first.startsWith("-") || first.includes("/")) return null;
  const options = rest.slice(0, rest.includes("--") ? rest.indexOf("--") : rest.length);
  const near = ["submit", "status"].some((name) => distance(first.toLowerCase(), name) <= 2);
  if (!options.some((arg) => CLIENT_OPTION.test(arg)) && !(near && !fs.existsSync(first))) return null;
  const guess = COMMANDS.map((name) => ({ name, d: distance(first.toLowerCase(), name) })).sort((a, b) => a.d - b.d)[0];
  const mean = guess !== undefined && guess.d <= 2 ? ` Did you mean '${guess.name}'?` : "";
  return `unknown command '${first}'.${mean} The commands are: ${COMMANDS.join(", ")} (see file-daemon --help); the daemon also runs as file-daemon RESULTS COMMANDS [SLEEP_TIME]`;
}

/**
 * Exit codes: see shared/exit-status.ts (the command's own for submit).
 * An error message ends with its code in brackets (`… [ALREADY_RUNNING]`), a stable marker that
 * programs (the supervisor) match instead of the wording.
 */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      const topic = first === "help" && rest[0] !== undefined ? HELP.get(rest[0]) : undefined;
      process.stdout.write(topic ?? USAGE);
      return first === undefined ? EXIT.USAGE : EXIT.OK;
    }
    if (first === "submit") return await submitCli(rest);
    if (first === "status") return statusCli(rest);
    const mistyped = first === "run" ? null : mistypedCommand(first, rest);
    if (mistyped !== null) {
      process.stderr.write(`file-daemon: ${mistyped} [BAD_OPTION]\n`);
      return EXIT.USAGE;
    }
    return await runDaemonCli(first === "run" ? rest : args);
  } catch (caught) {
    const err = fromParseArgsError(caught, "run");
    const message = err instanceof Error ? err.message : String(err);
    const line = err instanceof FileDaemonError ? `${message} [${err.code}]` : message;
    if (isDetachedStage(args)) notifyLauncher(`error ${line}\n`);
    const daemonRun = first !== "submit" && first !== "status";
    // A daemon that cannot start says why in its --log too, where its operator looks.
    const loggedToStderr = daemonRun && !wasLogged(err) && logStartupError(args, line);
    if (!loggedToStderr) process.stderr.write(`file-daemon: ${line}\n`);
    if (first === "submit") return submitFailureStatus(err);
    const usage = err instanceof FileDaemonError ? err.code === "BAD_OPTION" || err.code === "BAD_COMMAND" : err instanceof TypeError;
    if (err instanceof FileDaemonError && err.code === "ALREADY_RUNNING") return EXIT.ALREADY_RUNNING;
    return usage ? EXIT.USAGE : EXIT.FAILED;
  }
}

/** The value of --log in `args` (read leniently: the error may be that the options are bad). */
function logOption(args: string[]): string | null {
  for (const [i, arg] of args.entries()) {
    if (arg === "--") break;
    if (arg.startsWith("--log=")) return arg.slice(6) || null;
    const value = args[i + 1];
    if (arg === "--log" && value !== undefined) return value;
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
