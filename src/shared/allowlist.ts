import { FileDaemonError } from "../protocol/errors";

/**
 * The allowlist pattern language, shared by the `file-daemon` config node (the commands its exec
 * nodes may send) and the daemon's `--allow FILE` (the commands it runs at all).
 *
 * One pattern per line; blank lines and lines starting with `#` are ignored. A pattern must
 * match the whole command (leading and trailing spaces ignored); a run of spaces or tabs in it
 * matches a run of spaces or tabs. Everything else is literal except:
 *
 * - `*` any run of word characters inside one word, also none (but a word is never empty, so
 *   `*` as a whole word is exactly one argument): letters, digits and
 *   `_ - . : , + @ % =`. Never a space or tab, never a `/`, never shell syntax (quotes, `$`,
 *   backticks, `;`, `&`, `|`, `<`, `>`, brackets, globs, `~`, `#`, backslashes, line breaks…);
 * - `?` exactly one such character;
 * - `**` inside a word: like `*`, but also crosses `/` (`/var/log/**` reaches into subdirectories);
 * - `**` as the last word, after a space: zero or more further words, each made of word
 *   characters and `/` (the "any further arguments" form: `systemctl status **`);
 * - `\` makes the next character literal (`\*` is a star, `\ ` one space).
 *
 * A wildcard never helps to form a `..` path segment: `cat /home/pi/logs/*` allows
 * `cat /home/pi/logs/app.log` but neither `cat /home/pi/logs/..` nor `cat /home/pi/logs/../../etc/shadow`,
 * and no more than one argument. `***`, and `**` as a word of its own anywhere but last, are
 * errors. In the config node's append mode the pattern is matched against the node's own command:
 * the payload is then always one quoted argument that the shell passes on as is (and that `*`
 * could not describe).
 *
 * Config nodes saved before this syntax (no `version`) hold version-1 patterns, in which `*` and
 * `?` also matched spaces and `/`: migrateAllowlist (src/nodes/file-daemon/allowlist.ts) rewrites them.
 */
export class Allowlist {
  private constructor(
    readonly patterns: readonly string[],
    private readonly expressions: readonly RegExp[],
  ) {}

  /**
   * Parses allowlist text (current syntax); null when it holds no pattern. Throws FileDaemonError
   * BAD_OPTION naming `source` (the config node's "allowlist", or a file) and the line of an
   * invalid pattern.
   */
  static parse(text: unknown, source = "allowlist"): Allowlist | null {
    if (typeof text !== "string") return null;
    const patterns: string[] = [];
    const expressions: RegExp[] = [];
    for (const [index, line] of text.split(/\r?\n/).entries()) {
      const pattern = line.trim();
      if (pattern === "" || pattern.startsWith("#")) continue;
      patterns.push(pattern);
      try {
        expressions.push(compile(pattern));
      } catch (err) {
        throw new FileDaemonError("BAD_OPTION", `${source} line ${index + 1} ${JSON.stringify(pattern)}: ${(err as Error).message}`);
      }
    }
    if (patterns.length === 0) return null;
    return new Allowlist(patterns, expressions);
  }

  allows(command: string): boolean {
    const trimmed = command.trim();
    return this.expressions.some((expression) => expression.test(trimmed));
  }
}

/** The pattern syntax described above; config nodes store it as `version`. */
export const ALLOWLIST_VERSION = 2;

/** A word character: what `*` and `?` may match. */
const WORD_CHAR = "[\\p{L}\\p{N}_\\-.:,+@%=]";
/** Spaces and tabs: what separates words (a line break never does; it is never matched). */
const BLANK = "[ \\t]";
/** At the start of a path segment: the segment is not `..`. */
const NOT_DOT_DOT = "(?!\\.\\.(?:[/ \\t]|$))";
/** `**` inside a word: word characters and `/`, no segment it starts being `..`. */
const ACROSS_SLASHES = `(?:${WORD_CHAR}|/${NOT_DOT_DOT})*`;
/** One further word of a trailing `**`: word characters and `/`, no `..` segment. */
const FREE_WORD = `${NOT_DOT_DOT}(?:${WORD_CHAR}|/${NOT_DOT_DOT})+`;

type Token =
  | { readonly kind: "literal"; readonly char: string }
  | { readonly kind: "blank" }
  | { readonly kind: "star" | "doubleStar" | "question" };

function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern.charAt(i);
    if (char === "\\" && i + 1 < pattern.length) {
      tokens.push({ kind: "literal", char: pattern.charAt(++i) });
    } else if (char === "*") {
      let stars = 1;
      while (pattern[i + 1] === "*") {
        stars++;
        i++;
      }
      if (stars > 2) throw new Error(`${"*".repeat(stars)} means nothing: use * (within one word and path segment) or ** (across /, or as the last word: any further arguments)`);
      tokens.push({ kind: stars === 1 ? "star" : "doubleStar" });
    } else if (char === "?") {
      tokens.push({ kind: "question" });
    } else if (char === " " || char === "\t") {
      while (pattern[i + 1] === " " || pattern[i + 1] === "\t") i++;
      tokens.push({ kind: "blank" });
    } else {
      tokens.push({ kind: "literal", char });
    }
  }
  return tokens;
}

/** Splits tokens into words at (unescaped) blanks. */
function words(tokens: readonly Token[]): Token[][] {
  let word: Token[] = [];
  const result: Token[][] = [word];
  for (const token of tokens) {
    if (token.kind === "blank") result.push((word = []));
    else word.push(token);
  }
  return result;
}

const isWildcard = (token: Token): boolean => token.kind === "star" || token.kind === "doubleStar" || token.kind === "question";
/** Where a path segment ends inside a word: a literal `/`, or a literal (escaped) space or tab. */
const endsSegment = (token: Token): boolean => token.kind === "literal" && (token.char === "/" || token.char === " " || token.char === "\t");

function compile(pattern: string): RegExp {
  const all = words(tokenize(pattern));
  const last = all.at(-1) ?? [];
  const anyFurtherWords = last.length === 1 && last[0]?.kind === "doubleStar";
  const fixed = anyFurtherWords ? all.slice(0, -1) : all;
  for (const word of fixed) {
    if (word.length === 1 && word[0]?.kind === "doubleStar") throw new Error("** as a word of its own must be the last word (it stands for any further arguments)");
  }
  let source = fixed.map(compileWord).join(`${BLANK}+`);
  if (anyFurtherWords) source = fixed.length === 0 ? `(?:${FREE_WORD}(?:${BLANK}+${FREE_WORD})*)?` : `${source}(?:${BLANK}+${FREE_WORD})*`;
  return new RegExp(`^${source}$`, "u");
}

/**
 * One word of a pattern: it matches one word of the command, never none (a lone `*` cannot
 * make an argument vanish), and a segment holding a wildcard must not turn out to be `..`.
 */
function compileWord(word: readonly Token[]): string {
  let source = "(?![ \\t]|$)";
  let segmentStart = true;
  for (const [i, token] of word.entries()) {
    if (segmentStart) {
      const end = word.findIndex((t, j) => j >= i && endsSegment(t));
      if (word.slice(i, end === -1 ? undefined : end).some(isWildcard)) source += NOT_DOT_DOT;
    }
    if (token.kind === "literal") source += escape(token.char);
    else if (token.kind === "star") source += `${WORD_CHAR}*`;
    else if (token.kind === "question") source += WORD_CHAR;
    else if (token.kind === "doubleStar") source += ACROSS_SLASHES;
    segmentStart = endsSegment(token);
  }
  return source;
}

function escape(char: string): string {
  if (char === "\t") return "\\t";
  return /[\\^$.*+?()[\]{}|/]/.test(char) ? `\\${char}` : char;
}
