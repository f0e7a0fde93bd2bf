/**
 * The optional allowlist of a `file-daemon` config node: the commands its exec nodes may send.
 *
 * One pattern per line; blank lines and lines starting with `#` are ignored. A pattern must
 * match the whole command (leading and trailing spaces ignored). Everything in it is literal
 * except two wildcards, which only ever match "plain" characters — letters, digits, spaces and
 * `_ - . / : , + @ % =` — never shell syntax (quotes, `$`, backticks, `;`, `&`, `|`, `<`, `>`,
 * brackets, globs, backslashes, line breaks…):
 *
 * - `*` any run of plain characters, also none;
 * - `?` exactly one plain character;
 * - `\` makes the next character literal (`\*` is a star).
 *
 * So `systemctl restart *` allows `systemctl restart kodi` but not `systemctl restart kodi; rm -rf ~`.
 * In append mode the pattern is matched against the node's own command: the payload is then
 * always one quoted argument that the shell passes on as is (and that `*` could not describe).
 */
export class Allowlist {
  private constructor(
    readonly patterns: readonly string[],
    private readonly expressions: readonly RegExp[],
  ) {}

  /** Parses the config node's text; null when it holds no pattern (every command allowed). */
  static parse(text: unknown): Allowlist | null {
    if (typeof text !== "string") return null;
    const patterns = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    if (patterns.length === 0) return null;
    return new Allowlist(patterns, patterns.map(compile));
  }

  allows(command: string): boolean {
    const trimmed = command.trim();
    return this.expressions.some((expression) => expression.test(trimmed));
  }
}

const PLAIN = "[\\p{L}\\p{N} _\\-./:,+@%=]";

function compile(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string;
    if (char === "\\" && i + 1 < pattern.length) {
      source += escape(pattern[++i] as string);
    } else if (char === "*") {
      source += `${PLAIN}*`;
    } else if (char === "?") {
      source += PLAIN;
    } else {
      source += escape(char);
    }
  }
  return new RegExp(`^${source}$`, "u");
}

function escape(char: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(char) ? `\\${char}` : char;
}

/** A command refused by the allowlist: never written to the daemon's files. */
export class NotAllowedError extends Error {
  readonly code = "NOT_ALLOWED";

  constructor(command: string, what: string) {
    const shown = command.length > 120 ? `${command.slice(0, 120)}…` : command;
    super(`${what} ${JSON.stringify(shown)} matches no pattern of the daemon's allowlist; it was not run. Add a pattern for it in the file-daemon config node, or change the command`);
    this.name = "NotAllowedError";
  }
}
