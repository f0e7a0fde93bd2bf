import { ChildProcess } from "node:child_process";

interface SpawnOptions {
  readonly file?: string;
  readonly args?: readonly string[];
}

type Patchable = Record<string, (...args: unknown[]) => unknown>;

/**
 * Counts the processes this process starts: every asynchronous spawn (spawn, exec, execFile,
 * fork, execa) goes through ChildProcess.prototype.spawn; the synchronous ones are counted
 * where they are called through the child_process module.
 */
export class SpawnCounter {
  readonly calls: string[] = [];
  private readonly undo: (() => void)[] = [];

  constructor() {
    const proto = ChildProcess.prototype as unknown as Patchable;
    this.wrap(proto, "spawn", (options) => {
      const { file = "?", args = [] } = (options ?? {}) as SpawnOptions;
      return [file, ...args.slice(1)].join(" ");
    });
    const childProcess = process.getBuiltinModule("node:child_process") as unknown as Patchable;
    for (const name of ["spawnSync", "execSync", "execFileSync"]) this.wrap(childProcess, name, (first) => `${name} ${String(first)}`);
  }

  get count(): number {
    return this.calls.length;
  }

  reset(): void {
    this.calls.length = 0;
  }

  restore(): void {
    for (const undo of this.undo.splice(0)) undo();
  }

  private wrap(target: Patchable, name: string, describe: (first: unknown) => string): void {
    const original = target[name] as (...args: unknown[]) => unknown;
    const calls = this.calls;
    target[name] = function (this: unknown, ...args: unknown[]) {
      calls.push(describe(args[0]));
      return original.apply(this, args);
    };
    this.undo.push(() => (target[name] = original));
  }
}
