import { cwdProblem, envProblem, stdinSizeProblem } from "../protocol/command-options";
import type { CommandFeature } from "../protocol/daemon-info";
import { FileDaemonError } from "../protocol/errors";

/** What a submission asks beyond the command line (PROTOCOL.md §4, line 2), as the caller gave it. */
export interface ExtraOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly stdin?: string | Buffer;
  readonly onLine?: unknown;
}

/** The line 2 fields for them, and the daemon features they need. */
export interface CommandExtras {
  readonly record: { readonly cwd: string | null; readonly env: Readonly<Record<string, string>> | null; readonly stdin: Buffer | null; readonly stream: boolean };
  readonly features: readonly CommandFeature[];
}

/** Checks the options by the rules the daemon applies (BAD_COMMAND naming what is wrong), before anything is written. */
export function commandExtras(options: ExtraOptions): CommandExtras {
  const features: CommandFeature[] = [];
  const cwd = options.cwd ?? null;
  if (cwd !== null) {
    check("cwd", cwdProblem(cwd));
    features.push("cwd");
  }
  const env = options.env ?? null;
  if (env !== null) {
    check("env", envProblem(env));
    features.push("env");
  }
  let stdin: Buffer | null = null;
  if (options.stdin !== undefined) {
    if (typeof options.stdin !== "string" && !Buffer.isBuffer(options.stdin)) check("stdin", "must be a string or a Buffer");
    stdin = Buffer.isBuffer(options.stdin) ? options.stdin : Buffer.from(options.stdin, "utf8");
    check("stdin", stdinSizeProblem(stdin.length));
    features.push("stdin");
  }
  const stream = options.onLine !== undefined;
  if (stream) features.push("stream");
  return { record: { cwd, env, stdin, stream }, features };
}

function check(name: string, problem: string | null): void {
  if (problem !== null) throw new FileDaemonError("BAD_COMMAND", `${name} ${problem}`);
}
