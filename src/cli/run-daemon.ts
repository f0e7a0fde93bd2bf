import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { Readable } from "node:stream";
import { DAEMON_DEFAULTS } from "../daemon/options";
import { DEFAULT_STALE_MS } from "../protocol/limits";
import { EXIT } from "../shared/exit-status";
import { FileDaemonError, isErrorCode } from "../protocol/errors";
import { Daemon } from "../daemon/daemon";
import { LineLogger } from "../shared/log";
import { leasePath } from "../protocol/supervision-lease";
import { watchSupervision } from "../daemon/supervision-watch";
import { dropPrivileges, lookupUser } from "../daemon/privileges";
import { channelCount, sleepTimeMs } from "../shared/settings";

/** The umask of a detached daemon unless --umask says otherwise. */
const DETACHED_UMASK = 0o077;

export const RUN_USAGE = `Usage: file-daemon [run] RESULTS COMMANDS [SLEEP_TIME] [options]

Runs the daemon: takes commands from line 1 of COMMANDS, runs each with /bin/sh in its own
process group, and writes its exit status to line 1 of RESULTS (docs/PROTOCOL.md).
SLEEP_TIME is in seconds (default ${DAEMON_DEFAULTS.sleepTime}): how often the files are read when no change event
arrives. By default the daemon stays in the foreground and logs to stderr (right for systemd).

Options:
  --channels N       run up to N commands at once, each on its own pair of files (default ${DAEMON_DEFAULTS.channels})
  --detach           go to the background as a classic Unix daemon (new session, cwd /, umask,
                     stdin and stdout /dev/null, stderr to the log or /dev/null, inherited
                     descriptors closed); prints the pid once it is serving
  --pidfile PATH     write the daemon's pid here (atomically); removed on exit
  --log PATH         append log lines to PATH instead of stderr (SIGHUP reopens it)
  --shell PATH       shell that runs the commands (default ${DAEMON_DEFAULTS.shell})
  --stop-grace S     on SIGTERM, seconds running commands may finish before being killed (${DAEMON_DEFAULTS.stopGraceMs / 1000})
  --kill-grace S     seconds between SIGTERM and SIGKILL when killing a command (${DAEMON_DEFAULTS.killGraceMs / 1000})
  --capture-limit N  bytes of stdout and of stderr kept per command when asked (${DAEMON_DEFAULTS.captureLimit})
  --stale MS         lock staleness in ms; every party must use the same value (${DEFAULT_STALE_MS})
  --file-mode MODE   mode of files the daemon creates, octal (default 0${DAEMON_DEFAULTS.fileMode.toString(8)}); published in
                     COMMANDS.daemon: submitters create their files with it too (0660 shares
                     the files with the directory's group)
  --allow FILE       run only commands that a pattern of FILE allows (one per line, the
                     config node's allowlist syntax); every other command gets a refused
                     result, whoever wrote it. FILE must be writable by the daemon's user or
                     root only; SIGHUP reads it again (a bad new file keeps the old one)
  --umask MODE       umask with --detach, octal (default 0${DETACHED_UMASK.toString(8).padStart(3, "0")})
  --user NAME        when started as root, switch to this user (and its groups) before
                     serving; the files' directory, --log and --pidfile must be its to write
                     (without it, a daemon started as root logs a warning: every command
                     then runs as root)
  --no-watch         do not use change events; read the files every SLEEP_TIME only
  --supervised S     stop (letting running commands finish) once COMMANDS.supervisor has
                     named no live process for S seconds; set by Node-RED's managed mode
  -h, --help         show this help
`;

const RUN_OPTIONS = {
  channels: { type: "string" },
  detach: { type: "boolean" },
  pidfile: { type: "string" },
  log: { type: "string" },
  shell: { type: "string" },
  "stop-grace": { type: "string" },
  "kill-grace": { type: "string" },
  "capture-limit": { type: "string" },
  stale: { type: "string" },
  "file-mode": { type: "string" },
  allow: { type: "string" },
  umask: { type: "string" },
  user: { type: "string" },
  "no-watch": { type: "boolean" },
  supervised: { type: "string" },
  "detached-stage": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** `{ key: value }` when the option was given, else nothing (so the daemon's default applies). */
function defined<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** Options left out stay undefined: the daemon gives them their defaults (daemon/options.ts). */
function octal(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^0?[0-7]{3,4}$/.test(value)) throw new FileDaemonError("BAD_OPTION", `--${name} must be an octal mode like 0600, got ${value}`);
  return parseInt(value, 8);
}

function seconds(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new FileDaemonError("BAD_OPTION", `--${name} must be a number of seconds, got ${value}`);
  return Math.round(n * 1000);
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new FileDaemonError("BAD_OPTION", `--${name} must be a whole number above 0, got ${value}`);
  return n;
}

/** Logged once the daemon serves, when it runs as root without --user. */
export const ROOT_WARNING =
  "running as root without --user: every command it runs has root's full power, so whoever can write the commands file controls this machine; " +
  "start it with --user NAME (a user that owns the files' directory), or run it as a service user (systemd User=, or Node-RED itself as a normal user in managed mode)";

/** `file-daemon [run] RESULTS COMMANDS [SLEEP_TIME]`: resolves to the process exit code. */
export async function runDaemonCli(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: RUN_OPTIONS, allowPositionals: true });
  if (values.help) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  const [results, commands, sleepArg = String(DAEMON_DEFAULTS.sleepTime), ...extra] = positionals;
  if (results === undefined || commands === undefined || extra.length > 0) {
    throw new FileDaemonError("BAD_OPTION", `expected RESULTS COMMANDS [SLEEP_TIME], got ${positionals.length} argument(s); see file-daemon --help`);
  }
  sleepTimeMs(sleepArg);
  if (values.channels !== undefined) channelCount(values.channels);
  const umask = octal(values.umask, "umask") ?? DETACHED_UMASK;
  if (values.user !== undefined) lookupUser(values.user);
  const supervisedMs = values.supervised === undefined ? null : (seconds(values.supervised, "supervised") ?? 0);
  if (supervisedMs === 0) throw new FileDaemonError("BAD_OPTION", "--supervised must be a number of seconds above 0");
  if (values.detach && values["detached-stage"] === undefined) return launchDetached(args, values.log, values.user);
  const stage = values["detached-stage"];
  closeInheritedDescriptors(stage === undefined ? [] : [3]);
  if (stage === "1") return detachAgain(args, values.log);
  if (stage === "2") becomeDaemonProcess(umask);
  if (values.user !== undefined) dropPrivileges(values.user);

  const log = new LineLogger(values.log === undefined ? null : path.resolve(values.log));
  const daemon = await Daemon.start({
    results,
    commands,
    sleepTime: Number(sleepArg),
    ...defined("channels", values.channels === undefined ? undefined : Number(values.channels)),
    ...(values.pidfile === undefined ? {} : { pidfile: path.resolve(values.pidfile) }),
    ...(values.shell === undefined ? {} : { shell: values.shell }),
    ...defined("stopGraceMs", seconds(values["stop-grace"], "stop-grace")),
    ...defined("killGraceMs", seconds(values["kill-grace"], "kill-grace")),
    ...defined("captureLimit", positiveInt(values["capture-limit"], "capture-limit")),
    ...defined("stale", positiveInt(values.stale, "stale")),
    ...defined("fileMode", octal(values["file-mode"], "file-mode")),
    ...(values.allow === undefined ? {} : { allow: path.resolve(values.allow) }),
    watch: !values["no-watch"],
    log,
  });
  if (values.user === undefined && process.getuid?.() === 0) log.warn(ROOT_WARNING);
  const stop = (signal: string) => {
    log.info(`${signal} received: stopping`);
    void daemon.stop();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    if (log.reopen()) log.info("SIGHUP received: log reopened");
    daemon.reloadPolicy();
  });
  if (supervisedMs !== null) {
    const unwatch = watchSupervision({
      file: leasePath(path.resolve(commands)),
      graceMs: supervisedMs,
      log,
      onExpired: (why) => {
        log.info(`${why}: stopping`);
        void daemon.stop();
      },
    });
    void daemon.stopped.then(unwatch);
  }
  if (stage === "2") notifyLauncher(`ready ${process.pid}\n`);
  // Displaced by another daemon: not a clean stop, so a supervisor (systemd) sees a failure.
  return (await daemon.stopped) === "displaced" ? EXIT.ALREADY_RUNNING : EXIT.OK;
}

/** Stage 0, the command the user typed: start stage 1 in a new session, wait for readiness. */
async function launchDetached(args: string[], log: string | undefined, user: string | undefined): Promise<number> {
  const absolute = absolutePathArgs(args);
  if (log !== undefined) {
    // Created here so that a bad path fails at once, in the terminal; the daemon's user owns it.
    const file = path.resolve(log);
    fs.closeSync(fs.openSync(file, "a", 0o600));
    if (user !== undefined && process.getuid?.() === 0) {
      const { uid, gid } = lookupUser(user);
      fs.chownSync(file, uid, gid);
    }
  }
  const child = spawn(process.execPath, [process.argv[1] ?? "", "run", ...absolute, "--detached-stage", "1"], {
    detached: true,
    cwd: "/",
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  const pipe = child.stdio[3];
  if (!(pipe instanceof Readable)) throw new Error("the background daemon was started without its status pipe");
  let text = "";
  for await (const chunk of pipe) text += String(chunk);
  const line = text.trim();
  if (line.startsWith("ready ")) {
    process.stdout.write(`file-daemon started in the background, pid ${line.slice(6)}\n`);
    return 0;
  }
  const error = line.startsWith("error ") ? errorFromLine(line.slice(6)) : new FileDaemonError("IO", "the background daemon exited before it was ready; run it in the foreground to see why");
  // The daemon wrote it to its --log already.
  logged.add(error);
  throw error;
}

const logged = new WeakSet<object>();

/** Whether `err` was written to the daemon's log already (by the background daemon itself). */
export function wasLogged(err: unknown): boolean {
  return typeof err === "object" && err !== null && logged.has(err);
}

/** "message [CODE]" back into a FileDaemonError with that code. */
function errorFromLine(line: string): FileDaemonError {
  const [, message, code] = /^(.*) \[([A-Z_]+)\]$/s.exec(line) ?? [];
  return message !== undefined && isErrorCode(code) ? new FileDaemonError(code, message) : new FileDaemonError("IO", line);
}

/** Stage 1, a session leader: start stage 2 (which can never regain a terminal) and exit. */
function detachAgain(args: string[], log: string | undefined): number {
  const rest = args.filter((_arg, i) => args[i] !== "--detached-stage" && args[i - 1] !== "--detached-stage");
  // stderr goes to the log, so that even a crash of Node itself leaves its trace there.
  const stderr = log === undefined ? "ignore" : fs.openSync(log, "a", 0o600);
  const child = spawn(process.execPath, [process.argv[1] ?? "", ...rest, "--detached-stage", "2"], {
    cwd: "/",
    stdio: ["ignore", "ignore", stderr, 3],
  });
  child.unref();
  return 0;
}

/** Linux's O_CLOEXEC, as /proc/PID/fdinfo shows it in `flags` (octal). */
const O_CLOEXEC = 0o2000000;

/**
 * Closes the descriptors this process inherited beyond 0–2 (and `keep`), so that a daemon
 * holds no file, pipe or socket of whoever started it. Node opens every descriptor of its own
 * close-on-exec, so one without that flag was inherited. Linux only (/proc); elsewhere a no-op.
 */
export function closeInheritedDescriptors(keep: readonly number[]): void {
  let names: string[];
  try {
    names = fs.readdirSync("/proc/self/fd");
  } catch {
    return;
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isSafeInteger(fd) || fd <= 2 || keep.includes(fd)) continue;
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
      if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      fs.closeSync(fd);
    } catch {
      // Closed meanwhile (the directory listing's own descriptor): nothing to do.
    }
  }
}

/** Stage 2: the daemon proper. The session, cwd and stdio were set by its parents. */
function becomeDaemonProcess(umask: number): void {
  process.umask(umask);
  for (const signal of ["SIGTTOU", "SIGTTIN", "SIGTSTP"] as const) process.on(signal, () => undefined);
  process.on("uncaughtException", (err) => {
    notifyLauncher(`error ${err.message}\n`);
    // stderr is the log (or /dev/null): leave the reason where the operator looks.
    try {
      fs.writeSync(2, `${new Date().toISOString()} file-daemon[${process.pid}] error: uncaught exception, exiting: ${err.stack ?? err.message}\n`);
    } catch {
      // Nowhere to write.
    }
    process.exit(1);
  });
}

let launcherOpen = true;

export function notifyLauncher(message: string): void {
  if (!launcherOpen) return;
  launcherOpen = false;
  try {
    fs.writeSync(3, message);
    fs.closeSync(3);
  } catch {
    // The launcher is gone; nobody to tell.
  }
}

export function isDetachedStage(args: string[]): boolean {
  return args.includes("--detached-stage");
}

/** The same arguments with RESULTS, COMMANDS and path options absolute (the daemon runs in /). */
function absolutePathArgs(args: string[]): string[] {
  const { tokens } = parseArgs({ args, options: RUN_OPTIONS, allowPositionals: true, tokens: true });
  const out: string[] = [];
  let positional = 0;
  for (const token of tokens) {
    if (token.kind === "positional") {
      if (positional === 0 && token.value === "run") continue;
      out.push(positional < 2 || (positional === 2 && token.value === "run") ? path.resolve(token.value) : token.value);
      positional++;
    } else if (token.kind === "option" && token.name !== "detach") {
      const value = token.value === undefined ? [] : [token.name === "pidfile" || token.name === "log" || token.name === "allow" ? path.resolve(token.value) : token.value];
      out.push(`--${token.name}`, ...value);
    }
  }
  return out;
}
