import { quote } from "shell-quote";
import { validateCommand } from "../../protocol/command-line";
import { FileDaemonError } from "../../protocol/errors";

export interface CommandSettings {
  /** The node's fixed command; empty means msg.payload is the whole command. */
  readonly command: string;
  readonly appendPayload: boolean;
}

/** Holds an appended argument with line breaks (see `appendArgument`); unlikely to clash. */
const ARGUMENT_VARIABLE = "__file_daemon_arg";

/**
 * The command line for one message. Throws FileDaemonError BAD_COMMAND, saying what is wrong
 * with the input, when there is no usable command.
 */
export function commandFor(settings: CommandSettings, payload: unknown): string {
  const fixed = settings.command.trim();
  if (fixed === "") return validateCommand(wholeCommand(payload));
  if (!settings.appendPayload) return validateCommand(fixed);
  return validateCommand(appendArgument(fixed, argumentText(payload)));
}

/**
 * `command` followed by `argument` as exactly one word that the shell passes on byte for byte.
 * A command travels as one line, so an argument with line breaks cannot be quoted literally:
 * it is rebuilt by printf %b from escapes, and a trailing "_" keeps $(…) from eating final
 * newlines (POSIX sh, dash included).
 */
export function appendArgument(command: string, argument: string): string {
  if (argument.includes("\0")) throw new FileDaemonError("BAD_COMMAND", "msg.payload contains a NUL byte, which no command argument can hold; remove it");
  if (!/[\r\n]/.test(argument)) return `${command} ${quote([argument])}`;
  const escaped = argument.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
  return `${ARGUMENT_VARIABLE}=$(printf '%b_' ${quote([escaped])}); ${command} "\${${ARGUMENT_VARIABLE}%_}"`;
}

/**
 * The whole command: only a string. A number is refused rather than run, since the default
 * inject node sends a timestamp, which the shell would try to run as a program (exit 127).
 */
function wholeCommand(payload: unknown): string {
  if (typeof payload === "string") return payload;
  throw new FileDaemonError("BAD_COMMAND", `msg.payload is ${describe(payload)}: set a Command in the node, or send the command as a string`);
}

/** An appended argument: a string, or a number or boolean written out. */
function argumentText(payload: unknown): string {
  if (typeof payload === "string") return payload;
  if (typeof payload === "number" || typeof payload === "boolean" || typeof payload === "bigint") return String(payload);
  throw new FileDaemonError("BAD_COMMAND", `msg.payload is ${describe(payload)}; the appended argument must be a string, number or boolean. Set msg.payload to the argument's text, e.g. with a change or function node`);
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Buffer.isBuffer(value)) return "a Buffer";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return `a ${typeof value} (${String(value)})`;
  return `a${typeof value === "object" ? "n" : ""} ${typeof value}`;
}
