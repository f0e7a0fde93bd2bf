import { MAX_CWD_BYTES, MAX_ENV_BYTES, MAX_STDIN_BYTES } from "./limits";

/**
 * The rules for what line 2 may ask of a command besides running it (PROTOCOL.md §4): its
 * working directory, environment and standard input. Each returns what is wrong with a value,
 * or null; the daemon refuses a line 2 that breaks one, and submitters check before placing.
 */

/** An absolute path of at most MAX_CWD_BYTES without NUL. Whether it exists is the daemon's to judge, when it starts the command. */
export function cwdProblem(value: unknown): string | null {
  if (typeof value !== "string") return `must be a string naming a directory, got ${describe(value)}`;
  if (!value.startsWith("/")) return `must be an absolute path (starting with /), got ${JSON.stringify(value.slice(0, 80))}`;
  if (value.includes("\0")) return "must not contain a NUL byte";
  if (!value.isWellFormed()) return "is not valid Unicode text";
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > MAX_CWD_BYTES) return `is ${bytes} bytes long; the limit is ${MAX_CWD_BYTES}`;
  return null;
}

/** A variable name a POSIX shell can use: a letter or `_`, then letters, digits and `_`. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** An object of names to string values, together at most MAX_ENV_BYTES (each `NAME=value` plus a NUL, as execve counts them). */
export function envProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return `must be an object of NAME: "value" pairs, got ${describe(value)}`;
  let bytes = 0;
  for (const [name, text] of Object.entries(value as Record<string, unknown>)) {
    if (!ENV_NAME.test(name)) return `has the name ${JSON.stringify(name.slice(0, 80))}; a variable name is a letter or _ followed by letters, digits or _`;
    if (typeof text !== "string") return `${name} must be a string, got ${describe(text)}`;
    if (text.includes("\0")) return `${name} contains a NUL byte, which no environment variable can hold`;
    if (!text.isWellFormed()) return `${name} is not valid Unicode text`;
    bytes += Buffer.byteLength(name, "utf8") + Buffer.byteLength(text, "utf8") + 2;
  }
  if (bytes > MAX_ENV_BYTES) return `is ${bytes} bytes long; the limit is ${MAX_ENV_BYTES}: pass large data through a file or stdin instead`;
  return null;
}

/** Canonical base64 (RFC 4648 §4, with padding): what line 2's `stdin` holds. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Line 2's `stdin`: base64 of at most MAX_STDIN_BYTES. */
export function stdinProblem(value: unknown): string | null {
  if (typeof value !== "string" || !BASE64.test(value)) return `must be the base64 of the bytes to write, got ${describe(value)}`;
  const bytes = decodedLength(value);
  if (bytes > MAX_STDIN_BYTES) return stdinSizeProblem(bytes);
  return null;
}

/** The problem with standard input of `bytes` bytes, or null. */
export function stdinSizeProblem(bytes: number): string | null {
  return bytes > MAX_STDIN_BYTES ? `is ${bytes} bytes long; the limit is ${MAX_STDIN_BYTES} (1 MiB): pass larger data through a file` : null;
}

function decodedLength(base64: string): number {
  const padding = base64.endsWith("==") ? 2 : base64.endsWith("=") ? 1 : 0;
  return (base64.length / 4) * 3 - padding;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (Array.isArray(value)) return "an array";
  return `a${typeof value === "object" ? "n" : ""} ${typeof value}`;
}
