/**
 * The Node-RED process of the benchmark: a child of run.ts, so that the memory it is told to
 * hold, its event loop and the processes it starts are those of a Node-RED, not the driver's.
 * Loads flows through node-red-node-test-helper and answers requests over IPC (see ipc.ts); with
 * the full flow it also serves the helper's RED.httpAdmin (the sidebar plugin's routes) on a port.
 */
import { readFileSync } from "node:fs";
import { createServer, type RequestListener, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import helper from "node-red-node-test-helper";
import { SpawnCounter } from "./spawn-counter";
import type { BurstResult, DaemonFilesArg, EventLoopDelay, FlowKind, HoldResult, InitResult, LoadResult, MemoryKind, Reply, Request, SeqResult, StreamResult } from "./ipc";

type NodeModule = (RED: never) => void;
type Msg = Record<string, unknown>;
type FlowNode = Record<string, unknown> & { id: string; type: string };

const REPO = path.resolve(__dirname, "..", "..");
const load = createRequire(__filename);
const counter = new SpawnCounter();

/** NR_PKG=node-red-5 benchmarks Node-RED 5 (installed under that alias), as the tests do. */
const NR_PATH = load.resolve(process.env.NR_PKG || "node-red");

interface Pending {
  readonly resolve: (latency: number) => void;
  readonly reject: (err: Error) => void;
  readonly started: number;
}

const pending = new Map<string, Pending>();
let nextMessage = 0;
const held: Buffer[] = [];
/** JS objects held on the V8 heap: chunks of small objects, strings and arrays. */
const heldObjects = new Map<number, unknown[]>();
let heldObjectsMiB = 0;
const tickets = new Map<string, Promise<number>>();
/** Messages of the streaming node's second output, and the last result message seen. */
let streamedLines = 0;
let lastResult: Msg | null = null;

function coreNode(file: string): NodeModule {
  return load(load.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(NR_PATH)] })) as NodeModule;
}

/** Our two node modules; with `sidebar`, the editor sidebar's plugin too (the helper calls it with its RED like a node module). */
function ourNodes(sidebar: boolean): NodeModule[] {
  const modules = [load(path.join(REPO, "nodes", "file-daemon.js")) as NodeModule, load(path.join(REPO, "nodes", "file-daemon-exec.js")) as NodeModule];
  if (sidebar) modules.push(load(path.join(REPO, "nodes", "file-daemon-sidebar.js")) as NodeModule);
  return modules;
}

/** The loaded flows' RED.httpAdmin on a real port (the full flow's), so that the driver can ask it as the editor's tab does. */
let adminServer: Server | null = null;

/**
 * The helper's own express app, the RED.httpAdmin it hands the modules it loads (so the
 * sidebar's routes are on it). `_httpAdmin` is a private field of node-red-node-test-helper
 * (0.3: made anew by each load(); its request() wraps it in supertest), so our typings of the
 * helper (test/nodes/node-red-node-test-helper.d.ts) leave it out; read here, and checked.
 */
function helperAdminApp(): RequestListener {
  const app = (helper as unknown as { _httpAdmin?: unknown })._httpAdmin;
  if (typeof app !== "function") throw new Error("node-red-node-test-helper has no _httpAdmin app (has its internals changed?)");
  return app as RequestListener;
}

/** Serves the helper's admin app on 127.0.0.1, a free port; resolves to the port. */
async function serveAdmin(): Promise<number> {
  const server = createServer(helperAdminApp());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  adminServer = server;
  return (server.address() as AddressInfo).port;
}

async function stopAdmin(): Promise<void> {
  const server = adminServer;
  if (server === null) return;
  adminServer = null;
  // The driver's fetch keeps its connection alive, as a browser does: close it too.
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function node(id: string): NonNullable<ReturnType<typeof helper.getNode>> {
  const found = helper.getNode(id);
  if (found === null) throw new Error(`no node ${id} in the flow`);
  return found;
}

/** Our exec node: a fixed command, or (command "") the payload as the command. */
function ours(id: string, daemon: string, command: string, y: number): FlowNode {
  return { id, type: "file-daemon-exec", z: "tab", x: 300, y, daemon, command, appendPayload: false, timeout: 0, capture: false, failOnNonZero: false, wires: [["out"]] };
}

function config(id: string, files: DaemonFilesArg): FlowNode {
  return { id, type: "file-daemon", commandsFile: files.commands, resultsFile: files.results, sleepTime: files.sleepTime, mode: "external", channels: files.channels };
}

function flowFor(kind: FlowKind, d1?: DaemonFilesArg, dN?: DaemonFilesArg, dTmpfs?: DaemonFilesArg): FlowNode[] {
  const flow: FlowNode[] = [
    { id: "tab", type: "tab", label: "bench" },
    // The core exec node as a user sets it up to run `true`: no payload appended, exec mode.
    { id: "exec", type: "exec", z: "tab", x: 300, y: 100, command: "true", addpay: false, append: "", useSpawn: "false", timer: "", oldrc: false, wires: [[], [], ["out"]] },
    { id: "out", type: "helper", z: "tab", x: 600, y: 100, wires: [] },
    { id: "catch", type: "catch", z: "tab", x: 100, y: 400, scope: null, uncaught: false, wires: [["out"]] },
  ];
  if (kind === "full") {
    if (d1 === undefined || dN === undefined) throw new Error("load full: d1 and dN are required");
    flow.push(config("d1", d1), config("dN", dN), ours("ours", "d1", "true", 200), ours("oursN", "dN", "", 250), ours("oursN2", "dN", "", 300));
    // Stream ticked: each line of `seq 100000` is a message of its second output.
    flow.push({ ...ours("oursStream", "d1", "seq 100000", 400), stream: true, outputs: 2, wires: [["out"], ["lines"]] }, { id: "lines", type: "helper", z: "tab", x: 600, y: 400, wires: [] });
    if (dTmpfs !== undefined) flow.push(config("dT", dTmpfs), ours("oursTmpfs", "dT", "true", 350));
  }
  if (kind === "heap") {
    if (d1 === undefined) throw new Error("load heap: d1 is required");
    flow.push(config("d1", d1), ours("ours", "d1", "true", 200));
    if (dTmpfs !== undefined) flow.push(config("dT", dTmpfs), ours("oursTmpfs", "dT", "true", 350));
  }
  return flow;
}

function onOutput(msg: Msg): void {
  lastResult = msg;
  const id = msg._bench;
  if (typeof id !== "string") return;
  const waiter = pending.get(id);
  if (waiter === undefined) return;
  pending.delete(id);
  const latency = performance.now() - waiter.started;
  const error = msg.error as { message?: string } | undefined;
  if (error !== undefined) {
    waiter.reject(new Error(error.message ?? "error"));
    return;
  }
  const payload = msg.payload as { code?: number } | number | undefined;
  const code = typeof payload === "object" && payload !== null ? payload.code : msg.rc !== undefined ? (msg.rc as { code?: number }).code ?? msg.rc : payload;
  if (code !== 0) waiter.reject(new Error(`exit code ${JSON.stringify(code)}`));
  else waiter.resolve(latency);
}

/** Sends one message into node `id`; resolves to ms from receive() to its output. */
function send(id: string, payload: string): Promise<number> {
  const tag = `m${nextMessage++}`;
  return new Promise<number>((resolve, reject) => {
    pending.set(tag, { resolve, reject, started: performance.now() });
    node(id).receive({ payload, _bench: tag });
  });
}

function monitor(): () => EventLoopDelay {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  return () => {
    histogram.disable();
    return { p50: histogram.percentile(50) / 1e6, p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 };
  };
}

async function waitForDaemon(id: string, channels: number): Promise<void> {
  const configNode = node(id) as unknown as { fileDaemon?: { health: { state: string; channels: number } } };
  const deadline = performance.now() + 15_000;
  for (;;) {
    const health = configNode.fileDaemon?.health;
    if (health?.state === "running" && health.channels === channels) return;
    if (performance.now() > deadline) throw new Error(`config node ${id}: daemon not running (${JSON.stringify(health)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A full GC when the worker runs with --expose-gc, so that heapUsed counts live objects only. */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function hold(kind: MemoryKind, mib: number): HoldResult {
  const started = performance.now();
  collect();
  const heapBefore = process.memoryUsage().heapUsed;
  if (kind === "buffers") {
    // Buffers filled byte by byte: every page is touched, so RSS (what fork copies the page
    // tables of) really grows. Outside the V8 heap, so no --max-old-space-size is needed.
    const chunk = 64 * 1048576;
    while (held.length * 64 < mib) held.push(Buffer.alloc(chunk, 1));
  } else {
    // Many small objects (an object, a string and an array of two numbers each), chunked in a
    // Map, until the V8 heap has grown by `mib` (heapUsed after a full GC). Needs the worker to
    // run with a --max-old-space-size larger than that.
    const target = heapBefore + (mib - heldObjectsMiB) * 1048576;
    let key = heldObjects.size;
    for (;;) {
      while (process.memoryUsage().heapUsed < target) {
        const chunk: unknown[] = new Array<unknown>(4096);
        for (let i = 0; i < chunk.length; i++) chunk[i] = { n: key * 4096 + i, s: `s${key}-${i}`, a: [i, i + 0.5] };
        heldObjects.set(key++, chunk);
      }
      collect();
      if (process.memoryUsage().heapUsed >= target) break;
    }
    heldObjectsMiB = mib;
  }
  collect();
  const usage = process.memoryUsage();
  return {
    kind,
    heldMiB: kind === "buffers" ? held.length * 64 : heldObjectsMiB,
    rssBytes: usage.rss,
    heapUsedBytes: usage.heapUsed,
    heapGrowthBytes: usage.heapUsed - heapBefore,
    externalBytes: usage.external,
    holdMs: performance.now() - started,
  };
}

async function handle(request: Request): Promise<unknown> {
  switch (request.op) {
    case "init": {
      helper.init(NR_PATH);
      const version = (JSON.parse(readFileSync(path.join(path.dirname(NR_PATH), "..", "package.json"), "utf8")) as { version: string }).version;
      const result: InitResult = { nodeRedVersion: version, nodeRedPath: NR_PATH, node: process.versions.node, uv: process.versions.uv, v8: process.versions.v8, execPath: process.execPath };
      return result;
    }
    case "load": {
      const nodes = [coreNode("function/90-exec.js"), ...(request.flow === "base" ? [] : ourNodes(request.flow === "full"))];
      await helper.load(nodes, flowFor(request.flow, request.d1, request.dN, request.dTmpfs));
      // The helper spies on every node's send/status/log (sinon, plus a nextTick per call) for
      // test assertions; a real Node-RED does not, so remove that overhead for both nodes.
      (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
      node("out").on("input", onOutput);
      if (request.flow === "full") node("lines").on("input", () => streamedLines++);
      if (request.flow === "full" && request.d1 !== undefined && request.dN !== undefined) {
        await waitForDaemon("d1", request.d1.channels);
        await waitForDaemon("dN", request.dN.channels);
        if (request.dTmpfs !== undefined) await waitForDaemon("dT", request.dTmpfs.channels);
      }
      if (request.flow === "heap" && request.d1 !== undefined) {
        await waitForDaemon("d1", request.d1.channels);
        if (request.dTmpfs !== undefined) await waitForDaemon("dT", request.dTmpfs.channels);
      }
      const loaded: LoadResult = { adminPort: request.flow === "full" ? await serveAdmin() : null };
      return loaded;
    }
    case "seq": {
      counter.reset();
      const latencies: number[] = [];
      const stop = monitor();
      const started = performance.now();
      for (let i = 0; i < request.count; i++) latencies.push(await send(request.node, request.payload ?? ""));
      const elapsedMs = performance.now() - started;
      const eld = stop();
      const result: SeqResult = { latencies, elapsedMs, eld, spawns: counter.count, spawnExamples: counter.calls.slice(0, 2) };
      return result;
    }
    case "burst": {
      counter.reset();
      const stop = monitor();
      const started = performance.now();
      const sends: Promise<number>[] = [];
      for (let i = 0; i < request.count; i++) sends.push(send(request.nodes[i % request.nodes.length] as string, request.payload ?? ""));
      const settled = await Promise.allSettled(sends);
      const elapsedMs = performance.now() - started;
      const eld = stop();
      const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
      const result: BurstResult = {
        elapsedMs,
        ok: settled.length - failures.length,
        failed: failures.length,
        firstError: failures[0] === undefined ? null : String((failures[0].reason as Error).message),
        spawns: counter.count,
        eld,
      };
      return result;
    }
    case "start": {
      const ticket = `t${tickets.size}`;
      const done = send(request.node, request.payload);
      done.catch(() => undefined);
      tickets.set(ticket, done);
      return ticket;
    }
    case "await": {
      const done = tickets.get(request.ticket);
      if (done === undefined) throw new Error(`no ticket ${request.ticket}`);
      return await done;
    }
    case "hold":
      return hold(request.kind, request.mib);
    case "stream": {
      streamedLines = 0;
      const stop = monitor();
      const elapsedMs = await send(request.node, "");
      const eld = stop();
      const result = lastResult ?? {};
      const stopIdle = monitor();
      await new Promise((resolve) => setTimeout(resolve, elapsedMs));
      const streamed: StreamResult = { elapsedMs, lines: streamedLines, streamed: Number(result.streamed), missed: Number(result.missed), eld, idle: stopIdle() };
      return streamed;
    }
    case "quiet": {
      // The event loop with nothing to do: what this machine's scheduling alone costs.
      const stop = monitor();
      await new Promise((resolve) => setTimeout(resolve, request.ms));
      return stop();
    }
    case "unload": {
      await stopAdmin();
      await helper.unload();
      return null;
    }
  }
}

process.on("message", (raw: { id: number; request: Request }) => {
  handle(raw.request).then(
    (value) => process.send?.({ id: raw.id, ok: true, value } satisfies Reply),
    (err: unknown) => process.send?.({ id: raw.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply),
  );
});
process.on("disconnect", () => process.exit(0));
process.send?.({ id: 0, ok: true, value: "ready" } satisfies Reply);
