import { cwdProblem, envProblem } from "../../protocol/command-options";
import { FileDaemonError } from "../../protocol/errors";
import type { NodeMessage } from "../node-red-types";

/** The node's own working directory and environment, as the editor saves them. */
export interface OptionSettings {
  /** Empty: the daemon's working directory. */
  readonly cwd?: string;
  /** `NAME=value` per line; blank lines and lines starting with `#` are ignored. */
  readonly env?: string;
}

/** What one message's command gets beyond its line: msg.cwd over the node's, msg.env merged over the node's, msg.stdin. */
export interface MessageOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly stdin?: string | Buffer;
}

/** The node's Environment text as an object; BAD_OPTION naming the line that is not `NAME=value`. */
export function parseEnvSetting(text: string | undefined): Readonly<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const [index, raw] of (text ?? "").split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new FileDaemonError("BAD_OPTION", `the node's Environment, line ${index + 1} (${JSON.stringify(line.slice(0, 40))}): write NAME=value`);
    env[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  const problem = envProblem(env);
  if (problem !== null) throw new FileDaemonError("BAD_OPTION", `the node's Environment ${problem}`);
  return env;
}

/** Throws BAD_COMMAND naming the message property that is wrong; the rest is checked by the client as the daemon would. */
export function messageOptions(settings: OptionSettings, nodeEnv: Readonly<Record<string, string>>, msg: NodeMessage): MessageOptions {
  const cwd = msg.cwd !== undefined && msg.cwd !== null ? msgCwd(msg.cwd) : nodeCwd(settings.cwd);
  const env = { ...nodeEnv, ...msgEnv(msg.env) };
  const stdin = msgStdin(msg.stdin);
  return {
    ...(cwd === undefined ? {} : { cwd }),
    ...(Object.keys(env).length === 0 ? {} : { env }),
    ...(stdin === undefined ? {} : { stdin }),
  };
}

function msgCwd(value: unknown): string {
  const problem = cwdProblem(value);
  if (problem !== null) throw new FileDaemonError("BAD_COMMAND", `msg.cwd ${problem}`);
  return value as string;
}

function nodeCwd(value: string | undefined): string | undefined {
  const cwd = (value ?? "").trim();
  if (cwd === "") return undefined;
  const problem = cwdProblem(cwd);
  if (problem !== null) throw new FileDaemonError("BAD_OPTION", `the node's Working directory ${problem}`);
  return cwd;
}

function msgEnv(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value) || Buffer.isBuffer(value)) throw new FileDaemonError("BAD_COMMAND", 'msg.env must be an object of variables, e.g. {"LANG": "C"}');
  const env: Record<string, string> = {};
  for (const [name, text] of Object.entries(value as Record<string, unknown>)) {
    if (typeof text === "string") env[name] = text;
    else if (typeof text === "number" || typeof text === "boolean") env[name] = String(text);
    else throw new FileDaemonError("BAD_COMMAND", `msg.env.${name} must be a string (or a number or boolean), got ${text === null ? "null" : typeof text}`);
  }
  const problem = envProblem(env);
  if (problem !== null) throw new FileDaemonError("BAD_COMMAND", `msg.env ${problem}`);
  return env;
}

function msgStdin(value: unknown): string | Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string" || Buffer.isBuffer(value)) return value;
  throw new FileDaemonError("BAD_COMMAND", `msg.stdin must be a string or a Buffer, got ${Array.isArray(value) ? "an array" : typeof value}`);
}
