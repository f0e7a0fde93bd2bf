import fs from "node:fs";
import path from "node:path";
import { FileDaemonError } from "../protocol/errors";
import { Allowlist } from "../shared/allowlist";

/** How much of a refused command its refusal quotes. */
const SHOWN_CHARS = 120;

/**
 * The daemon's own policy (`--allow FILE`, PROTOCOL.md §5 take step 4 and §8): a command that
 * no pattern of FILE matches is refused, whoever wrote it into the commands file. The patterns
 * are the config node's allowlist language (src/shared/allowlist.ts). A file that holds no
 * pattern refuses every command.
 */
export class AllowPolicy {
  private constructor(
    readonly file: string,
    private allowlist: Allowlist | null,
  ) {}

  /** Reads and checks FILE; throws BAD_OPTION (unreadable, invalid pattern) or UNSAFE_FILES (others could change it). */
  static load(file: string): AllowPolicy {
    const absolute = path.resolve(file);
    return new AllowPolicy(absolute, readAllowFile(absolute));
  }

  /** How many patterns are in force (0: every command is refused). */
  get patterns(): number {
    return this.allowlist?.patterns.length ?? 0;
  }

  /** Reads the file again (SIGHUP); on any problem the old patterns stay and the error is thrown. */
  reload(): void {
    this.allowlist = readAllowFile(this.file);
  }

  /**
   * Why the policy refuses a command (the reason names the file), or null when a pattern
   * allows it. A command with its own environment or directory is refused whatever its line:
   * PATH, LD_PRELOAD or a directory of the sender's choosing would change what an allowed line runs.
   */
  refusal({ command, env, cwd }: { readonly command: string; readonly env: unknown; readonly cwd: string | null }): string | null {
    if (env !== null) return `not allowed by ${this.file}: a daemon with an allow file runs no command with its own environment (env), which could change what an allowed command runs (PATH, LD_PRELOAD…); set the variables in the command or in a script the file allows`;
    if (cwd !== null) return `not allowed by ${this.file}: a daemon with an allow file runs no command in a directory of the sender's choosing (cwd); use absolute paths in the command, or cd in a script the file allows`;
    if (this.allowlist?.allows(command)) return null;
    const shown = command.length > SHOWN_CHARS ? `${command.slice(0, SHOWN_CHARS)}…` : command;
    return `not allowed by ${this.file}: no pattern there matches ${JSON.stringify(shown)}`;
  }
}

function readAllowFile(file: string): Allowlist | null {
  const unsafe = unsafeAllowFileReason(file);
  if (unsafe !== null) throw new FileDaemonError("UNSAFE_FILES", `refusing the allow file: ${unsafe}`);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const detail = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new FileDaemonError("BAD_OPTION", `--allow ${file} cannot be read (${detail}); give the path of a readable file of patterns, one per line`, { cause: err });
  }
  return Allowlist.parse(text, `--allow ${file}`);
}

function daemonUid(): number {
  return process.getuid?.() ?? 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Why the allow file cannot be trusted, or null. Whoever can change it decides what the daemon
 * runs, so only the daemon's user or root may: the file must be a regular file owned by one of
 * them and writable by nobody else; its directory (after symbolic links) must be owned by one
 * of them and writable by nobody else, unless it has the sticky bit (then only the file's owner
 * can replace the file). A missing or unreadable file is left to the read that follows.
 */
export function unsafeAllowFileReason(file: string): string | null {
  let real: string;
  let stat: fs.Stats;
  try {
    real = fs.realpathSync(file);
    stat = fs.statSync(real);
  } catch {
    return null;
  }
  const uid = daemonUid();
  const trusted = (owner: number) => owner === uid || owner === 0;
  const shown = real === file ? file : `${file} (${real})`;
  if (!stat.isFile()) return `${shown} is not a regular file`;
  if (!trusted(stat.uid)) return `${shown} belongs to uid ${stat.uid}, who could change what the daemon runs; run: chown root ${real}`;
  if ((stat.mode & 0o022) !== 0) return `${shown} is writable by ${stat.mode & 0o002 ? "every user" : "its group"} (mode ${octal(stat.mode)}), who could change what the daemon runs; run: chmod go-w ${real}`;
  const dir = path.dirname(real);
  let dirStat: fs.Stats;
  try {
    dirStat = fs.statSync(dir);
  } catch {
    return null;
  }
  if (!trusted(dirStat.uid)) return `its directory ${dir} belongs to uid ${dirStat.uid}, who could replace the file; run: chown root ${dir}`;
  if ((dirStat.mode & 0o022) !== 0 && (dirStat.mode & 0o1000) === 0) {
    return `its directory ${dir} is writable by ${dirStat.mode & 0o002 ? "every user" : "its group"} (mode ${octal(dirStat.mode)}), who could replace the file; run: chmod go-w ${dir}`;
  }
  return null;
}
