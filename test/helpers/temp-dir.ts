import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** A private temp directory per test, removed afterwards. */
export function useTempDir(): { readonly path: string; file(name: string): string } {
  const state = { dir: "" };
  beforeEach(() => {
    state.dir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-test-"));
  });
  afterEach(() => {
    rmSync(state.dir, { recursive: true, force: true });
  });
  return {
    get path() {
      return state.dir;
    },
    file: (name: string) => path.join(state.dir, name),
  };
}
