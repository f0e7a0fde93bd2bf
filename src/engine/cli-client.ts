import { parseArgs } from "node:util";
import { peekSync } from "../protocol/channel-state";
import { decodeCommands } from "../protocol/command-record";
import { readLiveDaemon } from "../protocol/daemon-info";
import { FileDaemonError } from "../protocol/errors";
import { channelFiles, daemonFiles } from "../protocol/paths";
import { decodeResults, returnCodeLine } from "../protocol/result-record";
import { CommandFailedError, submitCommand, type CommandResult } from "./client";
import { DEFAULT_SLEEP_TIME } from "./settings";

export const SUBMIT_USAGE = `Usage: file-daemon submit -c COMMANDS -r RESULTS [options] [--] COMMAND...

Hands COMMAND to the daemon serving these files and waits for it. Exits with the command's
exit status (128+N if signal N ended it), or 125 if file-daemon itself failed (the message
says why: no daemon, bad command, timeout...). Nothing is forked here: only the daemon runs it.

Options:
  -c, --commands PATH   the commands file the daemon reads
  -r, --results PATH    the results file the daemon writes
  -s, --sleep S         seconds between looks when no change event arrives (default 0.5)
  -t, --timeout S       kill the command's process group after S seconds (default: none)
      --output          print the command's stdout and stderr (first 64 KiB of each)
      --wait S          wait up to S seconds for a daemon to appear (default 0)
  -h, --help            show this help

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

export async function submitCli(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...FILE_OPTIONS,
      sleep: { type: "string", short: "s" },
      timeout: { type: "string", short: "t" },
      output: { type: "boolean" },
      wait: { type: "string" },
    },
  });
  if (values.help) {
    process.stdout.write(SUBMIT_USAGE);
    return 0;
  }
  const files = requireFiles(values);
  if (positionals.length === 0) throw new FileDaemonError("BAD_COMMAND", "no command given; put it after --, e.g. file-daemon submit -c C -r R -- ls -l");
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  process.once("SIGTERM", () => abort.abort());
  const sleepTime = values.sleep === undefined ? DEFAULT_SLEEP_TIME : Number(values.sleep);
  let result: CommandResult;
  try {
    result = await submitCommand(positionals.join(" "), files.commands, files.results, sleepTime, {
      timeout: values.timeout === undefined ? 0 : Number(values.timeout),
      capture: values.output ?? false,
      daemonWait: values.wait === undefined ? 0 : Number(values.wait),
      signal: abort.signal,
    });
  } catch (err) {
    if (err instanceof CommandFailedError && err.result !== null) printOutput(err.result);
    throw err;
  }
  printOutput(result);
  const code = returnCodeLine(result);
  return code >= 0 ? code : 125;
}

function printOutput(result: CommandResult): void {
  if (result.stdout !== null) process.stdout.write(result.stdout);
  if (result.stderr !== null) process.stderr.write(result.stderr);
  if (result.stdoutTruncated || result.stderrTruncated) process.stderr.write("file-daemon: output was cut at the capture limit\n");
}

export async function statusCli(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: FILE_OPTIONS });
  if (values.help) {
    process.stdout.write(STATUS_USAGE);
    return 0;
  }
  const files = daemonFiles(...Object.values(requireFiles(values)) as [string, string]);
  const daemon = readLiveDaemon(files);
  if (daemon === null) {
    process.stdout.write(`not running: no file-daemon serves ${files.commands}\n`);
    return 3;
  }
  process.stdout.write(`running: pid ${daemon.pid}, ${daemon.channels} channel(s), sleep ${daemon.sleepTime} s, since ${daemon.startedAt}, version ${daemon.version}\n`);
  for (let i = 0; i < daemon.channels; i++) {
    const channel = channelFiles(files, i);
    const commands = decodeCommands(peekSync(channel.commands));
    const results = decodeResults(peekSync(channel.results));
    const parts: string[] = [];
    if (commands.kind === "pending") parts.push(`queued ${commands.record.id}`);
    if (results.kind === "running") parts.push(`running ${results.id}`);
    if (results.kind === "done") parts.push(`result ${returnCodeLine(results)} for ${results.id} waiting to be collected`);
    if (results.kind === "foreign") parts.push(`result ${results.code} waiting to be collected`);
    if (results.kind === "garbage") parts.push("unreadable results file");
    process.stdout.write(`  channel ${i}: ${parts.length === 0 ? "idle" : parts.join(", ")}\n`);
  }
  return 0;
}
