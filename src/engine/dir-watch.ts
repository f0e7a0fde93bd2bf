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
          if (name === null || !String(name).endsWith(".tmp")) this.changes.notify();
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
