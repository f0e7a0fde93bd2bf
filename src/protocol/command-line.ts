import { FileDaemonError } from "./errors";
import { MAX_COMMAND_BYTES } from "./limits";


/**
 * Checks that `command` can travel as line 1 of the commands file and reach the shell byte
 * for byte. Throws BAD_COMMAND naming what is wrong and what to do.
 */
export function validateCommand(command: unknown): string {
  if (typeof command !== "string") {
    const kind = command === null ? "null" : Buffer.isBuffer(command) ? "a Buffer" : Array.isArray(command) ? "an array" : typeof command;
    throw new FileDaemonError("BAD_COMMAND", `the command must be a string, got ${kind}; convert it to text first`);
  }
  if (isBlank(command)) {
    throw new FileDaemonError("BAD_COMMAND", "the command is empty; give the shell command to run");
  }
  if (/[\r\n]/.test(command)) {
    throw new FileDaemonError("BAD_COMMAND", "the command contains a line break; the commands file holds one command on one line: join the parts with ';' or '&&'");
  }
  if (command.includes("\0")) {
    throw new FileDaemonError("BAD_COMMAND", "the command contains a NUL byte, which no shell command can hold; remove it");
  }
  if (!command.isWellFormed()) {
    throw new FileDaemonError("BAD_COMMAND", "the command is not valid Unicode text (it holds a lone surrogate); fix its encoding");
  }
  const bytes = Buffer.byteLength(command, "utf8");
  if (bytes > MAX_COMMAND_BYTES) {
    throw new FileDaemonError("BAD_COMMAND", `the command is ${bytes} bytes long; the limit is ${MAX_COMMAND_BYTES} bytes: pass large data through a file instead`);
  }
  return command;
}

const BLANK = /^[ \t\v\f\r\n]*$/;

/** Blank as PROTOCOL.md §1 defines it: only spaces, tabs, vertical tabs, form feeds, CR, LF. */
export function isBlank(text: string): boolean {
  return BLANK.test(text);
}

/** Splits file content into line 1 and line 2 (either may be empty); later lines are ignored. */
export function firstTwoLines(content: Buffer): [Buffer, Buffer] {
  const end1 = content.indexOf(0x0a);
  if (end1 < 0) return [stripCr(content), Buffer.alloc(0)];
  const rest = content.subarray(end1 + 1);
  const end2 = rest.indexOf(0x0a);
  return [stripCr(content.subarray(0, end1)), stripCr(end2 < 0 ? rest : rest.subarray(0, end2))];
}

function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}

/** Parses a JSON object line; anything else (garbage, a legacy line) gives null. */
export function parseJsonLine(line: Buffer): Record<string, unknown> | null {
  if (line.length === 0 || line[0] !== 0x7b) return null;
  try {
    const value: unknown = JSON.parse(line.toString("utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

export function isPid(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
