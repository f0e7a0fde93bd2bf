import { readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Temp directories named `prefix…` left in os.tmpdir() or /dev/shm (by the benchmark or the profiler). */
export function leftovers(prefix: string): string[] {
  const list = (dir: string) => {
    try {
      return readdirSync(dir).filter((name) => name.startsWith(prefix)).map((name) => path.join(dir, name));
    } catch {
      return [];
    }
  };
  return [...list(os.tmpdir()), ...list("/dev/shm")];
}
