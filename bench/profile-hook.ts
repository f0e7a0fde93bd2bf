/**
 * `node -r dist/bench/profile-hook.js …`: records when this process locks, renames, wakes and
 * forks, for `npm run profile` (profile.ts). Loaded first, it wraps, on the module objects
 * everything else then uses:
 *
 * - fs.mkdirSync, fs.rmdirSync (lock directories: PROTOCOL.md §2) and fs.renameSync (every
 *   atomic write ends in one): start, duration, base name, error code;
 * - fs.watch: each change event, when it reaches JavaScript (before the caller's listener);
 * - child_process.spawn: start, how long the call blocked (the fork happens inside it), the
 *   child's pid, and when its 'exit' event came (before anyone else's listener).
 *
 * Nothing is recorded unless FILE_DAEMON_PROFILE_LOG names a file; the log is written there as
 * JSON (a ProfileLog) in a process 'exit' listener, so a process must exit, not die: the daemon
 * handles SIGTERM by stopping cleanly and exiting (src/cli/run-daemon.ts), which fires 'exit'.
 * The hook adds no signal listener of its own: any SIGTERM listener turns off Node's default
 * (die), and proper-lockfile's signal-exit stops re-raising a signal once it sees another
 * listener, so the processes profiled would no longer stop the way they do unprofiled.
 *
 * Each recorded call costs a few microseconds (two clock reads and an array push);
 * measureOverhead() says how many on this machine.
 */
import childProcess from "node:child_process";
import fs from "node:fs";
import { PROFILE_LOG_ENV, type Kind, type ProfileLog, type RawEvent } from "./profile-timeline";

type Sink = RawEvent[];

const events: Sink = [];

const now = (): number => performance.now();

function baseName(value: unknown): string {
  if (typeof value === "string") return value.slice(value.lastIndexOf("/") + 1);
  if (value instanceof URL) return baseName(value.pathname);
  return String(value);
}

/** performance.now() + offset = process.hrtime (CLOCK_MONOTONIC) in ms: the closest of a few back-to-back samples. */
function monotonicOffset(): number {
  let best = { spread: Infinity, offset: 0 };
  for (let i = 0; i < 20; i++) {
    const before = now();
    const mono = Number(process.hrtime.bigint()) / 1e6;
    const after = now();
    if (after - before < best.spread) best = { spread: after - before, offset: mono - (before + after) / 2 };
  }
  return best.offset;
}

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

/** `original`, recording each call's start, duration, base name of `nameOf(args)` and error code into `sink`. */
function recorded(original: AnyFunction, kind: Kind, nameOf: (args: unknown[]) => unknown, sink: Sink): AnyFunction {
  return function (this: unknown, ...args: unknown[]): unknown {
    const started = now();
    let code = "";
    try {
      return original.apply(this, args);
    } catch (err) {
      code = (err as NodeJS.ErrnoException).code ?? "ERROR";
      throw err;
    } finally {
      sink.push([started, kind, baseName(nameOf(args)), now() - started, code]);
    }
  };
}

function patch(target: object, name: string, wrap: (original: AnyFunction) => AnyFunction): void {
  const table = target as Record<string, AnyFunction>;
  table[name] = wrap(table[name] as AnyFunction);
}

function install(file: string): void {
  const offsetMs = monotonicOffset();
  patch(fs, "mkdirSync", (original) => recorded(original, "mkdir", (args) => args[0], events));
  patch(fs, "rmdirSync", (original) => recorded(original, "rmdir", (args) => args[0], events));
  patch(fs, "renameSync", (original) => recorded(original, "rename", (args) => args[1], events));
  patch(fs, "watch", (original) =>
    function (this: unknown, ...args: unknown[]): unknown {
      const watcher = original.apply(this, args) as fs.FSWatcher;
      watcher.prependListener("change", (type: string, name: string | Buffer | null) => events.push([now(), "watch", name === null ? "" : baseName(String(name)), 0, type]));
      return watcher;
    },
  );
  patch(childProcess, "spawn", (original) =>
    function (this: unknown, ...args: unknown[]): unknown {
      const started = now();
      const child = original.apply(this, args) as childProcess.ChildProcess;
      const pid = child.pid ?? -1;
      events.push([started, "spawn", baseName(args[0]), now() - started, pid]);
      child.prependListener("exit", () => events.push([now(), "exit", "", 0, pid]));
      return child;
    },
  );
  process.on("exit", () => {
    const log: ProfileLog = { pid: process.pid, offsetMs, events };
    fs.writeFileSync(file, JSON.stringify(log));
  });
}

const target = process.env[PROFILE_LOG_ENV];
const active = target !== undefined && target !== "";
if (active) install(target);

/** Records a point in time of the caller's own (profile-submitter.ts marks each round's start and end). */
export function mark(label: string): void {
  if (active) events.push([now(), "mark", label, 0, ""]);
}

/** Whether this process records (the hook was loaded with FILE_DAEMON_PROFILE_LOG set). */
export function recording(): boolean {
  return active;
}

/**
 * What one recorded call adds, in µs: the same wrapper around a function that does nothing,
 * called `count` times, minus the bare function (the median of a few tries). A hot loop is the
 * best case: the real calls, a few dozen per round and side, run colder.
 */
export function measureOverhead(count = 20_000): number {
  const noop: AnyFunction = function () {
    return undefined;
  };
  const tries: number[] = [];
  for (let attempt = 0; attempt < 7; attempt++) {
    const sink: Sink = [];
    const wrapped = recorded(noop, "mkdir", (args) => args[0], sink);
    const bareStart = now();
    for (let i = 0; i < count; i++) noop.call(undefined, "/x/commands.lock");
    const bare = now() - bareStart;
    const wrappedStart = now();
    for (let i = 0; i < count; i++) wrapped.call(undefined, "/x/commands.lock");
    const spent = now() - wrappedStart;
    tries.push(((spent - bare) * 1000) / count);
  }
  tries.sort((a, b) => a - b);
  return tries[Math.floor(tries.length / 2)] as number;
}
