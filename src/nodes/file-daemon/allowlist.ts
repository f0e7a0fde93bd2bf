import { FileDaemonError } from "../../protocol/errors";
import { ALLOWLIST_VERSION } from "../../shared/allowlist";

// The pattern language itself (Allowlist, ALLOWLIST_VERSION) is src/shared/allowlist.ts: the
// daemon's --allow uses it too. What stays here is the config node's own: the migration of
// patterns saved in an older syntax, and the error an exec node reports.

/** One rewritten line of a migrated allowlist. */
export interface MigratedPattern {
  readonly from: string;
  readonly to: string;
}

/**
 * Rewrites an allowlist written for pattern `version` (a config node saved without one holds
 * version 1) into the current syntax; comments, blank lines and unchanged lines are kept.
 *
 * Version 1 → 2, per pattern: runs of `*` count as one `*` (they meant the same); then a `*`
 * that is the last word becomes `**` (any further arguments); a `*` inside a word after a `/`
 * becomes `**` (the files below that directory, at any depth); every other `*`, and every `?`,
 * stays, and now stays inside its word and path segment. `..` is never produced by a wildcard
 * any more, and a `*` inside a path no longer reaches into further arguments.
 */
export function migrateAllowlist(text: string, version: number): { readonly text: string; readonly changed: readonly MigratedPattern[] } {
  if (version === ALLOWLIST_VERSION) return { text, changed: [] };
  if (version !== 1) throw new FileDaemonError("BAD_OPTION", `allowlist version ${JSON.stringify(version)} is unknown: this node understands 1 and ${ALLOWLIST_VERSION}`);
  const changed: MigratedPattern[] = [];
  const lines = text.split(/(\r?\n)/).map((line, i) => {
    if (i % 2 === 1) return line; // the line break itself
    const pattern = line.trim();
    if (pattern === "" || pattern.startsWith("#")) return line;
    const to = migrateV1Pattern(pattern);
    if (to === pattern) return line;
    changed.push({ from: pattern, to });
    return line.replace(pattern, () => to);
  });
  return { text: lines.join(""), changed };
}

function migrateV1Pattern(pattern: string): string {
  // Pieces: "\x" escapes, "*" (runs collapsed), blanks, other single characters.
  const pieces: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern.charAt(i);
    if (char === "\\" && i + 1 < pattern.length) pieces.push(char + pattern.charAt(++i));
    else if (char === "*") {
      while (pattern[i + 1] === "*") i++;
      pieces.push("*");
    } else pieces.push(char);
  }
  const isBlank = (piece: string | undefined): boolean => piece === " " || piece === "\t";
  let out = "";
  let slashInWord = false;
  for (const [i, piece] of pieces.entries()) {
    if (isBlank(piece)) slashInWord = false;
    else if (piece === "/" || piece === "\\/") slashInWord = true;
    if (piece !== "*") {
      out += piece;
      continue;
    }
    const wholeLastWord = (i === 0 || isBlank(pieces[i - 1])) && i === pieces.length - 1;
    out += wholeLastWord || slashInWord ? "**" : "*";
  }
  return out;
}

/** A command refused by the allowlist: never written to the daemon's files. */
export class NotAllowedError extends FileDaemonError {
  constructor(command: string, what: string) {
    const shown = command.length > 120 ? `${command.slice(0, 120)}…` : command;
    super("NOT_ALLOWED", `${what} ${JSON.stringify(shown)} matches no pattern of the daemon's allowlist; it was not run. Add a pattern for it in the file-daemon config node, or change the command`);
    this.name = "NotAllowedError";
  }
}
