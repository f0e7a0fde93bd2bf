import { chownSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * A private temp directory per test (mode 0700: the daemon refuses world-writable ones), owned
 * by `owner` when given, removed afterwards. Call it after registering the hook that stops
 * daemons: mocha runs afterEach hooks in the order they were registered, and a daemon still
 * running would write into the directory.
 */
export function useTempDir(options: { prefix?: string; owner?: number } = {}): { readonly path: string; file(name: string): string } {
  const state = { dir: "" };
  beforeEach(() => {
    state.dir = mkdtempSync(path.join(os.tmpdir(), options.prefix ?? "file-daemon-test-"));
    if (options.owner !== undefined) chownSync(state.dir, options.owner, options.owner);
  });
  afterEach(() => {
    rmSync(state.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  });
  return {
    get path() {
      return state.dir;
    },
    file: (name: string) => path.join(state.dir, name),
  };
}
