import fs from "node:fs";
import { ChangeSignal } from "./change-signal";

/**
 * Wakes waiters when anything changes in a set of directories (inotify via fs.watch).
 * Where no events arrive (network file systems) or watching fails, waiters still wake
 * every `sleep_time`: the caller always passes a timeout to `wait`.
 */
export class DirectoryWatch {
  readonly changes = new ChangeSignal();
  private readonly watchers = new Map<string, fs.FSWatcher | null>();

  constructor(
    private readonly directories: readonly string[],
    private readonly enabled: boolean,
  ) {
    this.rewatch();
  }

  /** (Re)starts watchers that are not running, e.g. after the directory was recreated. */
  rewatch(): void {
    if (!this.enabled) return;
    for (const dir of this.directories) {
      if (this.watchers.get(dir)) continue;
      try {
        const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
          if (name === null) this.changes.notify();
          else if (!name.endsWith(".tmp")) this.changes.notify(name);
        });
        watcher.on("error", () => {
          watcher.close();
          this.watchers.set(dir, null);
          this.changes.notify();
        });
        this.watchers.set(dir, watcher);
      } catch {
        this.watchers.set(dir, null);
      }
    }
  }

  close(): void {
    for (const watcher of this.watchers.values()) watcher?.close();
    this.watchers.clear();
  }
}

const shared = new Map<string, { watch: DirectoryWatch; users: number; idleTimer: NodeJS.Timeout | null }>();

/**
 * How long a shared watch nobody uses is kept: commands sent one after another would otherwise
 * add and remove an inotify watch each (two syscalls and a wake-up of their own).
 */
const IDLE_WATCH_MS = 30_000;

/**
 * One watcher per set of directories for the whole process: every submission in Node-RED
 * shares it instead of creating and closing an inotify watch per command. It never keeps the
 * process alive (persistent: false, unref()-ed timer).
 */
export function acquireSharedWatch(directories: readonly string[], enabled: boolean): { watch: DirectoryWatch; release: () => void } {
  const key = `${enabled}:${directories.join("\0")}`;
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = { watch: new DirectoryWatch(directories, enabled), users: 0, idleTimer: null };
    shared.set(key, entry);
  }
  if (entry.idleTimer !== null) clearTimeout(entry.idleTimer);
  entry.idleTimer = null;
  entry.users++;
  entry.watch.rewatch();
  const current = entry;
  let released = false;
  return {
    watch: current.watch,
    release: () => {
      if (released) return;
      released = true;
      if (--current.users > 0) return;
      current.idleTimer = setTimeout(() => {
        current.watch.close();
        shared.delete(key);
      }, IDLE_WATCH_MS).unref();
    },
  };
}
