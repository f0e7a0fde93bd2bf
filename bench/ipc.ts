/** Messages between the benchmark driver (run.ts) and the Node-RED worker (nodered-worker.ts). */

export interface DaemonFilesArg {
  readonly commands: string;
  readonly results: string;
  readonly channels: number;
  readonly sleepTime: number;
}

export type Request =
  | { readonly op: "init" }
  | { readonly op: "load"; readonly flow: "full" | "base"; readonly d1?: DaemonFilesArg; readonly dN?: DaemonFilesArg; readonly dTmpfs?: DaemonFilesArg }
  | { readonly op: "seq"; readonly node: string; readonly count: number; readonly payload?: string }
  | { readonly op: "burst"; readonly nodes: readonly string[]; readonly count: number; readonly payload?: string }
  | { readonly op: "start"; readonly node: string; readonly payload: string }
  | { readonly op: "await"; readonly ticket: string }
  | { readonly op: "hold"; readonly mib: number }
  | { readonly op: "quiet"; readonly ms: number }
  | { readonly op: "unload" };

export interface EventLoopDelay {
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface SeqResult {
  /** Milliseconds from node.receive() to the node's output, one per message. */
  readonly latencies: number[];
  readonly eld: EventLoopDelay;
  /** Processes the Node-RED process started during the run (child_process APIs). */
  readonly spawns: number;
  readonly spawnExamples: string[];
}

export interface BurstResult {
  readonly elapsedMs: number;
  readonly ok: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly spawns: number;
  readonly eld: EventLoopDelay;
}

export interface InitResult {
  readonly nodeRedVersion: string;
  readonly nodeRedPath: string;
}

export interface HoldResult {
  readonly heldMiB: number;
  readonly rssBytes: number;
}

export type Reply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
