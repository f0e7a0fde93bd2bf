import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { OutputLine } from "../client/stream-follower";
import { MAX_STDIN_BYTES } from "../protocol/limits";
import { readLiveDaemon } from "../protocol/io/live-daemon";
import { EXIT } from "../shared/exit-status";
import { FileDaemonError } from "../protocol/errors";
import { daemonFiles } from "../protocol/paths";
import { returnCodeLine } from "../protocol/result-record";
import { CommandFailedError, submitCommand, type CommandResult } from "../client/submit";
import { isIdle, readChannels } from "../client/channel-overview";
import { DEFAULT_SLEEP_TIME, MAX_SLEEP_TIME } from "../shared/settings";

/** The largest timeout a submitter may ask for, in seconds (what a Node timer can hold). */
const MAX_TIMEOUT_S = 2_147_483;

export const SUBMIT_USAGE = `Usage: file-daemon submit -c COMMANDS -r RESULTS [options] [--] COMMAND...

Hands COMMAND to the daemon serving these files and waits for it. Nothing is forked here:
only the daemon runs it.

Options:
  -c, --commands PATH   the commands file the daemon reads
  -r, --results PATH    the results file the daemon writes (not the same file as -c)
  -s, --sleep S         seconds between looks when no change event arrives (default 0.5)
  -t, --timeout S       kill the command's process group after S seconds (default: none)
      --output          print the command's stdout and stderr (first 64 KiB of each) when it ends
  -f, --follow          print each line of its stdout and stderr as it comes (no limit)
      --cwd DIR         run it in DIR (default: the daemon's working directory)
      --env NAME=VALUE  set a variable for it over the daemon's environment (repeatable)
      --stdin FILE      write FILE to its standard input ('-': this program's own, up to 1 MiB)
      --wait S          wait up to S seconds for a daemon to appear (default 5; 0 fails at once)
  -h, --help            show this help

Exit status (as timeout(1) and env(1) use them):
  0-255    the command's own exit status
  128+N    signal N ended the command (e.g. 137 for SIGKILL, 143 for SIGTERM)
  124      the command ran past --timeout and was killed
  125      file-daemon itself failed: bad option, no daemon, the daemon died, the command
           was refused or could not be started...; the reason is on stderr

Example (cron):  */5 * * * * file-daemon submit -c ~/fd/commands -r ~/fd/results -- backup.sh
`;


export const STATUS_USAGE = `Usage: file-daemon status -c COMMANDS -r RESULTS

Says whether a daemon serves these files, its pid, and what each channel holds.
Exits 0 when a daemon is serving, 3 when none is.
`;

const FILE_OPTIONS = {
  commands: { type: "string", short: "c" },
  results: { type: "string", short: "r" },
  help: { type: "boolean", short: "h" },
} as const;

function requireFiles(values: { commands?: string | undefined; results?: string | undefined }): { commands: string; results: string } {
  if (values.commands === undefined || values.results === undefined) {
    throw new FileDaemonError("BAD_OPTION", "both --commands and --results are required (the same paths the daemon was started with)");
  }
  return { commands: values.commands, results: values.results };
}

/** Seconds given to an option: a plain number in [min, max], or a message that says so. */
function secondsOption(value: string | undefined, flag: string, range: { min: number; max: number; above?: boolean; example: string }): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === "" ? Number.NaN : Number(value);
  const low = range.above === true ? n > range.min : n >= range.min;
  if (!Number.isFinite(n) || !low || n > range.max) {
    const span = `${range.above === true ? "above" : "from"} ${range.min} ${range.above === true ? "and at most" : "to"} ${range.max}`;
    throw new FileDaemonError("BAD_OPTION", `${flag} expects a number of seconds ${span} (e.g. ${range.example}), got '${value}'`);
  }
  return n;
}

/**
 * node:util parseArgs's errors said in terms of `file-daemon COMMAND` (still BAD_OPTION, a usage
 * error); anything else is returned as it is.
 */
export function fromParseArgsError(err: unknown, command: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) return err;
  const option = (/'([^']+)'/.exec((err as Error).message)?.[1] ?? "").replace(/ <value>$/, "");
  const help = `see file-daemon ${command} --help`;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const hint = command === "submit" ? `; if it is the command's, put the command after --: file-daemon submit -c C -r R -- ls ${option}` : "";
    return new FileDaemonError("BAD_OPTION", `Unknown option '${option}' (${help})${hint}`, { cause: err });
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return new FileDaemonError("BAD_OPTION", `option ${option} needs a value (${help})`, { cause: err });
  }
  return new FileDaemonError("BAD_OPTION", `${(err as Error).message} (${help})`, { cause: err });
}

function parseCommandArgs<R>(command: string, parse: () => R): R {
  try {
    return parse();
  } catch (err) {
    throw fromParseArgsError(err, command);
  }
}

export async function submitCli(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("submit", () =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...FILE_OPTIONS,
        sleep: { type: "string", short: "s" },
        timeout: { type: "string", short: "t" },
        output: { type: "boolean" },
        follow: { type: "boolean", short: "f" },
        cwd: { type: "string" },
        env: { type: "string", multiple: true },
        stdin: { type: "string" },
        wait: { type: "string" },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(SUBMIT_USAGE);
    return 0;
  }
  const files = requireFiles(values);
  const sleep = secondsOption(values.sleep, "-s/--sleep", { min: 0, above: true, max: MAX_SLEEP_TIME, example: "-s 0.5" });
  const timeout = secondsOption(values.timeout, "-t/--timeout", { min: 0, max: MAX_TIMEOUT_S, example: "-t 30, or 0 for no limit" });
  const wait = secondsOption(values.wait, "--wait", { min: 0, max: MAX_TIMEOUT_S, example: "--wait 10" });
  if (positionals.length === 0) throw new FileDaemonError("BAD_COMMAND", "no command given; put it after --, e.g. file-daemon submit -c C -r R -- ls -l");
  if (values.follow === true && values.output === true) throw new FileDaemonError("BAD_OPTION", "--follow prints the output as it comes and --output once it has ended: use one of them");
  const env = envOption(values.env);
  const stdin = values.stdin === undefined ? undefined : readStdinOption(values.stdin);
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  process.once("SIGTERM", () => abort.abort());
  let result: CommandResult;
  try {
    result = await submitCommand(positionals.join(" "), files.commands, files.results, sleep ?? DEFAULT_SLEEP_TIME, {
      capture: values.output ?? false,
      signal: abort.signal,
      // Options not given are left out, so the client's own defaults apply.
      ...(timeout === undefined ? {} : { timeout }),
      ...(wait === undefined ? {} : { daemonWait: wait }),
      ...(values.cwd === undefined ? {} : { cwd: path.resolve(values.cwd) }),
      ...(env === undefined ? {} : { env }),
      ...(stdin === undefined ? {} : { stdin }),
      ...(values.follow === true ? { onLine: printLine } : {}),
    });
  } catch (err) {
    if (err instanceof CommandFailedError && err.result !== null) printOutput(err.result);
    throw err;
  }
  printOutput(result);
  const code = returnCodeLine(result);
  const missed = result.missed ?? 0;
  if (missed > 0) process.stderr.write(`file-daemon: ${missed} line(s) of output were missed (this program read them too slowly)\n`);
  return code >= 0 ? code : EXIT.SUBMIT_FAILED;
}

/**
 * The exit status of `file-daemon submit` when submitCli threw `err` (its message is printed by
 * the caller): 124 for a timeout, 128+N for a command the daemon killed with signal N, else 125.
 */
export function submitFailureStatus(err: unknown): number {
  if (!(err instanceof CommandFailedError)) return EXIT.SUBMIT_FAILED;
  if (err.code === "TIMEOUT") return EXIT.TIMEOUT;
  if (err.code === "KILLED" && err.result !== null) {
    const code = returnCodeLine(err.result);
    if (code >= 0) return code;
  }
  return EXIT.SUBMIT_FAILED;
}

/** `--env NAME=VALUE`, given any number of times, as an object (the names are checked with the rest of the options). */
function envOption(pairs: string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined) return undefined;
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new FileDaemonError("BAD_OPTION", `--env expects NAME=VALUE, got '${pair}'`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** `--stdin FILE` (or `-`): its bytes, refused when more than the protocol carries (no more than one byte past the limit is read). */
function readStdinOption(file: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    const fd = file === "-" ? 0 : fs.openSync(file, "r");
    try {
      for (let read = -1; read !== 0 && total <= MAX_STDIN_BYTES; ) {
        const chunk = Buffer.allocUnsafe(Math.min(65_536, MAX_STDIN_BYTES + 1 - total));
        read = fs.readSync(fd, chunk, 0, chunk.length, null);
        chunks.push(chunk.subarray(0, read));
        total += read;
      }
    } finally {
      if (fd !== 0) fs.closeSync(fd);
    }
  } catch (err) {
    throw new FileDaemonError("BAD_OPTION", `--stdin ${file}: cannot read it (${(err as Error).message})`);
  }
  if (total > MAX_STDIN_BYTES) throw new FileDaemonError("BAD_COMMAND", `--stdin ${file} is more than ${MAX_STDIN_BYTES} bytes (1 MiB), the most a command's standard input may be: pass larger data through a file`);
  return Buffer.concat(chunks);
}

/** A followed line, to the stream it came from; a part of a long line without its line break. */
function printLine(line: OutputLine): void {
  (line.stream === "stdout" ? process.stdout : process.stderr).write(line.partial ? line.text : `${line.text}\n`);
}

function printOutput(result: CommandResult): void {
  if (result.stdout !== null) process.stdout.write(result.stdout);
  if (result.stderr !== null) process.stderr.write(result.stderr);
  if (result.stdoutTruncated || result.stderrTruncated) process.stderr.write("file-daemon: output was cut at the capture limit\n");
}

export function statusCli(args: string[]): number {
  const { values } = parseCommandArgs("status", () => parseArgs({ args, options: FILE_OPTIONS }));
  if (values.help) {
    process.stdout.write(STATUS_USAGE);
    return 0;
  }
  const given = requireFiles(values);
  const files = daemonFiles(given.commands, given.results);
  const daemon = readLiveDaemon(files);
  if (daemon === null) {
    process.stdout.write(`not running: no file-daemon serves ${files.commands}\n`);
    return EXIT.NOT_RUNNING;
  }
  process.stdout.write(`running: pid ${daemon.pid}, ${daemon.channels} channel(s), sleep ${daemon.sleepTime} s, since ${daemon.startedAt}, version ${daemon.version}\n`);
  for (const channel of readChannels(files, daemon.channels)) {
    const parts: string[] = [];
    if (channel.queued !== null) parts.push(`queued ${channel.queued}`);
    if (channel.running !== null) parts.push(`running ${channel.running}`);
    if (channel.uncollected !== null) parts.push(`result ${channel.uncollected.code}${channel.uncollected.id === null ? "" : ` for ${channel.uncollected.id}`} waiting to be collected`);
    if (channel.unreadable) parts.push("unreadable results file");
    process.stdout.write(`  channel ${channel.index}: ${isIdle(channel) ? "idle" : parts.join(", ")}\n`);
  }
  return 0;
}
