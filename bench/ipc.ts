/** Messages between the benchmark driver (run.ts) and the Node-RED worker (nodered-worker.ts). */

export interface DaemonFilesArg {
  readonly commands: string;
  readonly results: string;
  readonly channels: number;
  readonly sleepTime: number;
}

/** "full": every node, and the sidebar plugin with its admin routes served on a port; "base": the core exec node only; "heap": the exec node and ours on d1, and on dTmpfs when given (a memory row's fresh worker). */
export type FlowKind = "full" | "base" | "heap";

export type Request =
  | { readonly op: "init" }
  | { readonly op: "load"; readonly flow: FlowKind; readonly d1?: DaemonFilesArg; readonly dN?: DaemonFilesArg; readonly dTmpfs?: DaemonFilesArg }
  | { readonly op: "seq"; readonly node: string; readonly count: number; readonly payload?: string }
  | { readonly op: "burst"; readonly nodes: readonly string[]; readonly count: number; readonly payload?: string }
  | { readonly op: "start"; readonly node: string; readonly payload: string }
  | { readonly op: "await"; readonly ticket: string }
  | { readonly op: "hold"; readonly kind: MemoryKind; readonly mib: number }
  | { readonly op: "quiet"; readonly ms: number }
  | { readonly op: "stream"; readonly node: string }
  | { readonly op: "unload" };

/** The reply to "load". */
export interface LoadResult {
  /**
   * "full": the port on 127.0.0.1 where the worker serves its RED.httpAdmin, the sidebar
   * plugin's routes (GET /file-daemon/overview) among them; null for the other flows.
   */
  readonly adminPort: number | null;
}

export interface EventLoopDelay {
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface SeqResult {
  /** Milliseconds from node.receive() to the node's output, one per message. */
  readonly latencies: number[];
  /** Wall time of the whole run (the event-loop delay's window). */
  readonly elapsedMs: number;
  readonly eld: EventLoopDelay;
  /** Processes the Node-RED process started during the run (child_process APIs). */
  readonly spawns: number;
  readonly spawnExamples: string[];
}

/** One streamed command: its lines as messages of the node's second output, and the event loop meanwhile and idle after. */
export interface StreamResult {
  readonly elapsedMs: number;
  /** Messages that arrived on the second output. */
  readonly lines: number;
  /** msg.streamed and msg.missed of the result. */
  readonly streamed: number;
  readonly missed: number;
  readonly eld: EventLoopDelay;
  /** The same process with nothing to do, for as long, right after. */
  readonly idle: EventLoopDelay;
}

export interface BurstResult {
  readonly elapsedMs: number;
  readonly ok: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly spawns: number;
  readonly eld: EventLoopDelay;
}

/**
 * What the extra memory of a Node-RED worker is made of. "buffers": Buffer.alloc, outside the
 * V8 heap, pages fork() must copy the page tables of. "objects": small JS objects in a Map, on
 * the V8 heap, whose pages Node >= 20.4 marks MADV_DONTFORK (nodejs/node#48523), so fork skips them.
 */
export type MemoryKind = "buffers" | "objects";

export interface InitResult {
  readonly nodeRedVersion: string;
  readonly nodeRedPath: string;
  /** process.versions.node, .uv, .v8 and process.execPath of the worker. */
  readonly node: string;
  readonly uv: string;
  readonly v8: string;
  readonly execPath: string;
}

/** Memory of the worker after a hold, all from process.memoryUsage() (bytes). */
export interface HoldResult {
  readonly kind: MemoryKind;
  readonly heldMiB: number;
  /** VmRSS now (process.memoryUsage().rss). */
  readonly rssBytes: number;
  /** The V8 heap in use (heapUsed), after a full GC. */
  readonly heapUsedBytes: number;
  /** How much heapUsed grew for this hold (after a full GC). */
  readonly heapGrowthBytes: number;
  /** Memory outside the V8 heap that V8 knows of (external: Buffers' ArrayBuffers among it). */
  readonly externalBytes: number;
  /** Time the allocation took. */
  readonly holdMs: number;
}

export type Reply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };
