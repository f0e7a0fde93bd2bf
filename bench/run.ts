/**
 * `npm run bench`: our round trip against Node-RED's core exec node and a raw spawn, on this
 * machine, every figure measured in this run. `--quick` is the short version CI runs.
 *
 *   node dist/bench/run.js [--quick] [--dir DIR] [--node PATH]... [--compare-node] [--soak SECONDS]
 *
 * The table judges issue #12's targets (T1-T5, named in its Target column) and ends with a
 * "targets:" block. `--soak SECONDS`: how long the soak runs (full run 180, --quick 10; 0 skips it).
 *
 * Which Node: the full run measures everything twice, on the repository's Node 22
 * (node_modules/node) and Node 24 (node_modules/node24), and prints a table for each and the
 * memory rows side by side. `--quick` measures on the Node running it only; `--compare-node`
 * adds the other one. `--node PATH` (repeatable) names the Nodes instead. Each Node gets its own
 * driver process (this file again, on that Node), so its daemons and Node-RED workers and the
 * bare node all run on it.
 *
 * Processes: this driver; the daemons (`node bin/file-daemon.js ...`, separate processes as in
 * real use); a Node-RED process (nodered-worker.js) whose event loop, CPU and forks are
 * measured; for +0 and each memory row, a fresh Node-RED process that holds that much extra
 * memory, of one kind (Buffers or JS objects), or none; a second Node-RED with only the core
 * exec node (the idle baseline); a bare idle `node` (the memory baseline); for the soak, a
 * daemon of its own fed by this driver through the client. The first Node-RED also serves its
 * admin routes on a port, and this driver asks the sidebar's overview there as an open editor
 * tab would, from outside the Node-RED process.
 */
import { existsSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { submitCommand } from "../src/client/submit";
import { killAllChildren, NodeRedWorker, REPO, runDriver, spawnTrue, startBareNode, startDaemon, type DaemonChild, type PlainChild } from "./children";
import type { BurstResult, DaemonFilesArg, EventLoopDelay, HoldResult, InitResult, LoadResult, MemoryKind, SeqResult, StreamResult } from "./ipc";
import { cpuSample, cpuUse, fileSystemOf, memoryOf, startSampling, type CpuUse, type Memory, type Sample } from "./proc";
import { countForks, straceAvailable, type ForkCount } from "./strace";
import { fmt, median, mib, ms, ratio, times } from "./stats";
import { LABELS, renderTable, verdict, type Row } from "./table";

interface Plan {
  readonly quick: boolean;
  /** Messages per round, rounds, for the sequential comparison at +0. */
  readonly seq: readonly [number, number];
  /** The same in each memory row's fresh worker. */
  readonly heapSeq: readonly [number, number];
  readonly floor: readonly [number, number];
  readonly engine: number;
  readonly poll: number;
  readonly burstRounds: number;
  readonly idleMs: number;
  /** Between the idle window right after work and the steady one (V8 collects the work's garbage meanwhile). */
  readonly settleMs: number;
  readonly sleepS: number;
  readonly busyCount: number;
  readonly straceMessages: number;
  /** Extra memory of the memory rows (each size of each kind in a fresh Node-RED process). */
  readonly heapMiB: readonly number[];
  /** Seconds of the soak (--soak overrides; 0 skips it). */
  readonly soakS: number;
}

const KINDS: readonly MemoryKind[] = ["buffers", "objects"];
const KIND_LABEL: Record<MemoryKind, string> = { buffers: "Buffers (off-heap; what fork copies)", objects: "JS objects (V8 heap, MADV_DONTFORK)" };

const FULL: Plan = { quick: false, seq: [50, 5], heapSeq: [40, 3], floor: [50, 5], engine: 100, poll: 10, burstRounds: 3, idleMs: 10_000, settleMs: 15_000, sleepS: 10, busyCount: 100, straceMessages: 20, heapMiB: [512, 1024], soakS: 180 };
const QUICK: Plan = { quick: true, seq: [15, 2], heapSeq: [10, 1], floor: [20, 2], engine: 20, poll: 3, burstRounds: 1, idleMs: 1000, settleMs: 0, sleepS: 1, busyCount: 10, straceMessages: 5, heapMiB: [256], soakS: 10 };

/** The repository's Nodes (devDependencies "node" and "node24"). */
const REPO_NODES = [path.join(REPO, "node_modules", "node", "bin", "node"), path.join(REPO, "node_modules", "node24", "bin", "node")];

/** Marks the machine-readable summary a per-Node driver prints last (--summary). */
const SUMMARY_MARK = "@@file-daemon-bench-summary@@ ";

function sizeText(size: number): string {
  return size >= 1024 ? `${size / 1024} GiB` : `${size} MiB`;
}

const SLEEP_TIME = 0.5;

/** Issue #12's thresholds (the targets block at the end names them T1-T5). */
const T1_DISK = 1.0;
const T1_TMPFS = 0.6;
const T2_BURST = 1.0;
const T3_IDLE = 1.1;
const T3_BURST = 1.2;
const T3_SOAK = 1.3;
const T4_P99 = 1;
const T4_MAX = 3;

type Judged = boolean | null;

function word(ok: Judged): string {
  return ok === null ? "n/a" : ok ? "PASS" : "FAIL";
}

interface Target {
  readonly id: string;
  /** Every part that was measured passed; null: none was measured. */
  readonly ok: Judged;
  readonly text: string;
}

function target(id: string, what: string, parts: readonly { readonly ok: Judged; readonly text: string }[]): Target {
  const measured = parts.filter((p) => p.ok !== null);
  return { id, ok: measured.length === 0 ? null : measured.every((p) => p.ok === true), text: `${what}: ${parts.map((p) => p.text).join("; ")}` };
}

function signedMs(value: number): string {
  return `${value >= 0 ? "+" : ""}${fmt(value, 1)} ms`;
}

const BURST = 200;

/**
 * How often the editor's open sidebar tab asks while nothing changes (REFRESH_MS in
 * nodes/file-daemon-sidebar.html): the next GET this long after the previous answer. A change
 * makes it ask once more (a comms notice, at most 4 a second): only while something happens.
 */
const TAB_POLL_MS = 10_000;
/** The full flow's external config nodes (d1 and dN; dT too with tmpfs): an overview lists each. */
const TAB_MIN_DAEMONS = 2;
/** The tab's cost, judged against the same Node-RED with the tab closed. */
const TAB_CPU = 0.1;
/** In the event-loop window with the tab open, the first GET waits this long, so that the worker's monitor has started. */
const TAB_ELD_OFFSET_MS = 20;

interface TabPoll {
  readonly requests: number;
  readonly failed: number;
  readonly firstError: string | null;
  /** ms from each GET to its whole answer, read and checked. */
  readonly latencies: readonly number[];
}

/** One GET of the overview, as the tab sends it; null when the answer is 200, JSON, with every config node; else what is wrong. */
async function askOverview(url: string): Promise<string | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const text = await response.text();
    // The start of the answer, on one line (it may end up in a table cell).
    const start = text.slice(0, 200).replace(/\s+/g, " ");
    if (response.status !== 200) return `status ${response.status}: ${start}`;
    const type = response.headers.get("content-type") ?? "";
    if (!type.startsWith("application/json")) return `content-type ${type}: ${start}`;
    const body = JSON.parse(text) as { daemons?: unknown };
    if (!Array.isArray(body.daemons)) return `no daemons list: ${start}`;
    if (body.daemons.length < TAB_MIN_DAEMONS) return `${body.daemons.length} daemon(s), expected ≥ ${TAB_MIN_DAEMONS}: ${start}`;
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The open tab for `windowMs` (from now): after `startAfterMs`, a GET; TAB_POLL_MS after its
 * answer the next, one after the other as the tab's timer does, while the next still starts
 * inside the window.
 */
async function openTab(url: string, windowMs: number, startAfterMs = 0): Promise<TabPoll> {
  const end = performance.now() + windowMs;
  await pause(startAfterMs);
  const latencies: number[] = [];
  let failed = 0;
  let firstError: string | null = null;
  for (;;) {
    const asked = performance.now();
    const error = await askOverview(url);
    latencies.push(performance.now() - asked);
    if (error !== null) {
      failed++;
      firstError ??= error;
    }
    if (performance.now() + TAB_POLL_MS >= end) break;
    await pause(TAB_POLL_MS);
  }
  return { requests: latencies.length, failed, firstError, latencies };
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function pause(msWait: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, msWait));
}

function machineInfo(nodeRed: InitResult, dir: string, loadAtStart: number): string {
  const cpus = os.cpus();
  if (nodeRed.node !== process.versions.node) throw new Error(`the Node-RED worker runs Node ${nodeRed.node}, the driver ${process.versions.node}`);
  return [
    `Load:     1-min load average ${loadAtStart.toFixed(2)} at the start, ${(os.loadavg()[0] ?? 0).toFixed(2)} at the end (other work on this machine adds noise)`,
    `Date:     ${new Date().toISOString()}`,
    `CPU:      ${cpus[0]?.model ?? "?"} × ${cpus.length} (${os.arch()}), ${mib(os.totalmem())} RAM, Linux ${os.release()}`,
    `Node:     v${nodeRed.node}, libuv ${nodeRed.uv}, V8 ${nodeRed.v8} (${nodeRed.execPath}): this driver, the daemons and every Node-RED worker; Node-RED ${nodeRed.nodeRedVersion}`,
    `Files:    ${dir} (${fileSystemOf(dir)})`,
  ].join("\n");
}

interface SeqStats {
  latencies: number[];
  eld: EventLoopDelay[];
  spawns: number;
  messages: number;
}

function emptySeq(): SeqStats {
  return { latencies: [], eld: [], spawns: 0, messages: 0 };
}

function addSeq(into: SeqStats, result: SeqResult): void {
  into.latencies.push(...result.latencies);
  into.eld.push(result.eld);
  into.spawns += result.spawns;
  into.messages += result.latencies.length;
}

function eldText(stats: SeqStats): string {
  return `event loop p50 ${fmt(median(stats.eld.map((e) => e.p50)), 1)} / p99 ${fmt(median(stats.eld.map((e) => e.p99)), 1)} / max ${fmt(maxEld(stats), 1)} ms`;
}

function maxEld(stats: SeqStats): number {
  return Math.max(...stats.eld.map((e) => e.max));
}

interface Compared {
  readonly exec: SeqStats;
  readonly ours: SeqStats;
  /** Our node with its files on tmpfs, when measured. */
  readonly tmpfs: SeqStats | null;
  /** The same Node-RED's event loop with nothing to do, one window per round as long as that round of ours. */
  readonly idle: EventLoopDelay[];
}

/**
 * Exec node and our node (and our node on tmpfs), `rounds` rounds of `count` messages each,
 * interleaved; after each round of ours, the event loop of the same process idle for as long.
 */
async function compare(worker: NodeRedWorker, [count, rounds]: readonly [number, number], withTmpfs: boolean): Promise<Compared> {
  const exec = emptySeq();
  const ours = emptySeq();
  const tmpfs = withTmpfs ? emptySeq() : null;
  const idle: EventLoopDelay[] = [];
  for (let round = 0; round < rounds; round++) {
    addSeq(exec, await worker.request<SeqResult>({ op: "seq", node: "exec", count }));
    const oursRound = await worker.request<SeqResult>({ op: "seq", node: "ours", count });
    addSeq(ours, oursRound);
    idle.push(await worker.request<EventLoopDelay>({ op: "quiet", ms: Math.max(100, Math.round(oursRound.elapsedMs)) }));
    if (tmpfs !== null) addSeq(tmpfs, await worker.request<SeqResult>({ op: "seq", node: "oursTmpfs", count }));
  }
  return { exec, ours, tmpfs, idle };
}

/** Event-loop delay over rounds: p99 the median of the rounds' p99, max the largest. */
function eldOver(rounds: readonly EventLoopDelay[]): { p99: number; max: number } {
  return { p99: median(rounds.map((e) => e.p99)), max: Math.max(...rounds.map((e) => e.max)) };
}

/** A private directory on tmpfs (/dev/shm) when the main one is not on tmpfs already, else null. */
function tmpfsDir(main: string): string | null {
  if (fileSystemOf(main) === "tmpfs" || fileSystemOf("/dev/shm") !== "tmpfs") return null;
  try {
    return mkdtempSync(path.join("/dev/shm", "file-daemon-bench-"));
  } catch {
    return null;
  }
}

interface NodeSummary {
  readonly node: string;
  readonly uv: string;
  readonly execPath: string;
  readonly seconds: number;
  /** Its "targets:" line. */
  readonly targets: string;
  readonly rows: readonly { readonly what: string; readonly exec: string; readonly ours: string }[];
}

/** The Nodes to measure on: --node PATHs; else both of the repository's (full run, --compare-node), or this one. */
function nodesToRun(given: readonly string[] | undefined, quick: boolean, compare: boolean): string[] {
  if (given !== undefined && given.length > 0) return given.map((p) => path.resolve(p));
  if (quick && !compare) return [process.execPath];
  const found = REPO_NODES.filter((p) => existsSync(p));
  return found.length > 0 ? found : [process.execPath];
}

/** One driver per Node, one after the other; their tables, then the memory rows side by side. */
async function runPerNode(nodes: readonly string[], passOn: readonly string[]): Promise<number> {
  const summaries: NodeSummary[] = [];
  let failed = 0;
  for (const nodePath of nodes) {
    log(`--- on ${nodePath} ---`);
    const { code, stdout } = await runDriver(nodePath, [...passOn, "--this-node", "--summary"]);
    const markAt = stdout.lastIndexOf(SUMMARY_MARK);
    const text = markAt < 0 ? stdout : stdout.slice(0, markAt);
    if (markAt >= 0) summaries.push(JSON.parse(stdout.slice(markAt + SUMMARY_MARK.length)) as NodeSummary);
    const title = markAt >= 0 ? `Node v${(summaries.at(-1) as NodeSummary).node}` : nodePath;
    process.stdout.write(`\n## ${title} (${nodePath})\n${text}`);
    if (code !== 0) {
      failed++;
      process.stdout.write(`\n(the driver on ${nodePath} exited ${code})\n`);
    }
  }
  if (summaries.length > 1) {
    process.stdout.write(`\n## The memory rows side by side: ${summaries.map((s) => `Node v${s.node} (libuv ${s.uv})`).join(" vs ")}\n\n`);
    const lines = [`| Node-RED holding | ${summaries.map((s) => `v${s.node}: exec node | v${s.node}: ours`).join(" | ")} |`, `|---|${summaries.map(() => "---|---|").join("")}`];
    const first = summaries[0] as NodeSummary;
    for (const [i, row] of first.rows.entries()) {
      lines.push(`| ${row.what} | ${summaries.map((s) => `${s.rows[i]?.exec ?? "n/a"} | ${s.rows[i]?.ours ?? "n/a"}`).join(" | ")} |`);
    }
    process.stdout.write(`${lines.join("\n")}\n\nEach cell: median ms/msg, event-loop delay max in that Node-RED process while the messages ran. Each table above says how it was measured.\n`);
    process.stdout.write(`\n## Issue #12's targets per Node (each Node's table ends with the details)\n\n${summaries.map((s) => `Node v${s.node}: ${s.targets}`).join("\n")}\n`);
  }
  return failed === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      dir: { type: "string" },
      node: { type: "string", multiple: true },
      "compare-node": { type: "boolean" },
      soak: { type: "string" },
      // Internal: measure in this process, on this Node (what runPerNode starts).
      "this-node": { type: "boolean" },
      summary: { type: "boolean" },
    },
  });
  const plan = values.quick ? QUICK : FULL;
  const soakSeconds = values.soak === undefined ? plan.soakS : Number(values.soak);
  if (!Number.isFinite(soakSeconds) || soakSeconds < 0) throw new Error(`--soak takes a number of seconds (0: no soak), got ${values.soak}`);
  if (values["this-node"] !== true) {
    const nodes = nodesToRun(values.node, plan.quick, values["compare-node"] === true);
    const single = nodes.length === 1 && nodes[0] === process.execPath;
    if (!single) {
      const passOn = [...(plan.quick ? ["--quick"] : []), ...(values.dir === undefined ? [] : ["--dir", values.dir]), ...(values.soak === undefined ? [] : ["--soak", values.soak])];
      const onSignal = () => {
        killAllChildren();
        process.exit(130);
      };
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      return await runPerNode(nodes, passOn);
    }
  }
  const base = path.resolve(values.dir ?? os.tmpdir());
  const dir = mkdtempSync(path.join(base, "file-daemon-bench-"));
  const dirs = [dir];
  const removeDirs = () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  const stops: (() => Promise<void>)[] = [];
  const onSignal = () => {
    killAllChildren();
    removeDirs();
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const shm = tmpfsDir(dir);
    if (shm !== null) dirs.push(shm);
    return await measure(plan, soakSeconds, dir, shm, stops, values.summary === true);
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log(`cleanup: ${String(err)}`));
    killAllChildren();
    removeDirs();
  }
}

interface HeapRow {
  /** null: +0, nothing held. */
  readonly kind: MemoryKind | null;
  readonly mib: number;
  readonly held: HoldResult;
  readonly exec: SeqStats;
  readonly ours: SeqStats;
  readonly tmpfs: SeqStats | null;
  readonly idle: EventLoopDelay[];
}

const arg = (d: DaemonChild): DaemonFilesArg => ({ commands: d.commands, results: d.results, channels: d.channels, sleepTime: d.sleepTime });

/**
 * One memory row: a fresh Node-RED process (exec node and ours on d1, and on tmpfs when
 * given), warmed up, then made to hold `size` MiB of `kind` (nothing for +0), then the
 * sequential comparison; stopped afterwards, so at most one such process holds memory at a
 * time. Every row, +0 included, runs with the same flags: --expose-gc (heapUsed after a full
 * GC) and an old space big enough for the JS objects.
 */
async function heapRow(kind: MemoryKind | null, size: number, d1: DaemonChild, dTmpfs: DaemonChild | null, seq: readonly [number, number]): Promise<HeapRow> {
  const worker = new NodeRedWorker(["--expose-gc", `--max-old-space-size=${size + 1024}`]);
  try {
    await worker.ready;
    await worker.request<InitResult>({ op: "init" });
    await worker.request({ op: "load", flow: "heap", d1: arg(d1), ...(dTmpfs === null ? {} : { dTmpfs: arg(dTmpfs) }) });
    await worker.request({ op: "seq", node: "exec", count: WARM_UP });
    await worker.request({ op: "seq", node: "ours", count: WARM_UP });
    if (dTmpfs !== null) await worker.request({ op: "seq", node: "oursTmpfs", count: WARM_UP });
    const held = await worker.request<HoldResult>({ op: "hold", kind: kind ?? "buffers", mib: size });
    if (kind !== null) log(`  +${sizeText(size)} of ${kind}: held in ${fmt(held.holdMs / 1000, 1)} s; VmRSS ${mib(held.rssBytes)}, heapUsed ${mib(held.heapUsedBytes)} (${held.heapGrowthBytes >= 0 ? "+" : ""}${mib(held.heapGrowthBytes)}), external ${mib(held.externalBytes)}`);
    // V8 may still sweep concurrently after the allocation's GCs.
    await pause(500);
    const result = await compare(worker, seq, dTmpfs !== null);
    return { kind, mib: size, held, ...result };
  } finally {
    await worker.stop();
  }
}

/** Messages each node runs before a row is measured: V8 has compiled the hot paths of both by then (ours is the longer one). */
const WARM_UP = 30;

const SOAK_RATE = 5;
const SOAK_CHANNELS = 2;

interface SoakResult {
  readonly seconds: number;
  /** Once a second: the daemon's memory and open fds. */
  readonly samples: readonly Sample[];
  /** The daemon's memory at the end (VmHWM: its peak over its whole life). */
  readonly end: Memory;
  readonly ok: number;
  readonly failed: number;
  readonly firstError: string | null;
  /** Commands per channel. */
  readonly channels: readonly number[];
  readonly maxInFlight: number;
}

/**
 * A fresh daemon on SOAK_CHANNELS channels (started like the others, as in real use), fed
 * `true` at SOAK_RATE commands a second through the client from this process for `seconds`;
 * its memory and open fds sampled every second.
 */
async function soak(dir: string, seconds: number, stops: (() => Promise<void>)[]): Promise<SoakResult> {
  log(`soak: ${seconds} s at ${SOAK_RATE} commands/s on a ${SOAK_CHANNELS}-channel daemon, through the client`);
  const daemon = await startDaemon(dir, "soak", SLEEP_TIME, SOAK_CHANNELS);
  stops.push(daemon.stop);
  try {
    const sampling = startSampling(daemon.pid, 1000);
    const started = performance.now();
    const channels = Array.from({ length: SOAK_CHANNELS }, () => 0);
    let ok = 0;
    let failed = 0;
    let firstError: string | null = null;
    let inFlight = 0;
    let maxInFlight = 0;
    const running: Promise<void>[] = [];
    for (let k = 0; k < seconds * SOAK_RATE; k++) {
      // On a fixed schedule, not after the previous command: a slow command does not lower the rate.
      await pause(Math.max(0, started + (k * 1000) / SOAK_RATE - performance.now()));
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      running.push(
        submitCommand("true", daemon.commands, daemon.results, SLEEP_TIME).then(
          (result) => {
            inFlight--;
            if (result.code === 0) ok++;
            else {
              failed++;
              firstError ??= `exit code ${result.code}`;
            }
            channels[result.channel] = (channels[result.channel] ?? 0) + 1;
          },
          (err: unknown) => {
            inFlight--;
            failed++;
            firstError ??= err instanceof Error ? err.message : String(err);
          },
        ),
      );
    }
    await Promise.all(running);
    const samples = sampling.stop();
    return { seconds: (performance.now() - started) / 1000, samples, end: memoryOf(daemon.pid), ok, failed, firstError, channels, maxInFlight };
  } finally {
    await daemon.stop();
  }
}

function heldText(h: HoldResult): string {
  return `VmRSS ${mib(h.rssBytes)}, V8 heapUsed ${mib(h.heapUsedBytes)}, external ${mib(h.externalBytes)}`;
}

async function measure(plan: Plan, soakSeconds: number, dir: string, shm: string | null, stops: (() => Promise<void>)[], summary: boolean): Promise<number> {
  const cores = os.availableParallelism();
  const channels = cores * 2;
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  log(`${plan.quick ? "quick" : "full"} run; files in ${dir}`);

  // --- processes ---------------------------------------------------------------------------
  const d1 = await startDaemon(dir, "d1", SLEEP_TIME, 1);
  stops.push(d1.stop);
  const dN = await startDaemon(dir, "dN", SLEEP_TIME, channels);
  stops.push(dN.stop);
  const dPoll = await startDaemon(dir, "poll", SLEEP_TIME, 1, ["--no-watch"]);
  stops.push(dPoll.stop);
  const dTmpfs = shm === null ? null : await startDaemon(shm, "d1", SLEEP_TIME, 1);
  if (dTmpfs !== null) stops.push(dTmpfs.stop);
  const bare: PlainChild = await startBareNode();
  stops.push(bare.stop);
  const worker = new NodeRedWorker();
  stops.push(() => worker.stop());
  const baseline = new NodeRedWorker();
  stops.push(() => baseline.stop());
  await Promise.all([worker.ready, baseline.ready]);
  const nodeRed = await worker.request<InitResult>({ op: "init" });
  await baseline.request<InitResult>({ op: "init" });
  const loaded = await worker.request<LoadResult>({ op: "load", flow: "full", d1: arg(d1), dN: arg(dN), ...(dTmpfs === null ? {} : { dTmpfs: arg(dTmpfs) }) });
  if (loaded.adminPort === null) throw new Error("the Node-RED worker serves no admin port for the full flow");
  const overviewUrl = `http://127.0.0.1:${loaded.adminPort}/file-daemon/overview`;
  await baseline.request({ op: "load", flow: "base" });

  // The daemon's memory idle, before its first command (Node-RED has loaded the flows: the config nodes found it).
  const idleMemory = { daemon: memoryOf(d1.pid), bare: memoryOf(bare.pid) };

  // Warm up every path once (module loading, JIT, first watcher) before anything is timed.
  await worker.request({ op: "seq", node: "exec", count: WARM_UP });
  await worker.request({ op: "seq", node: "ours", count: WARM_UP });
  await worker.request({ op: "seq", node: "oursN", count: 5, payload: "true" });
  if (dTmpfs !== null) await worker.request({ op: "seq", node: "oursTmpfs", count: WARM_UP });
  await baseline.request({ op: "seq", node: "exec", count: 5 });
  for (let i = 0; i < 3; i++) await submitCommand("true", d1.commands, d1.results, SLEEP_TIME);
  for (let i = 0; i < 3; i++) await spawnTrue();

  // --- idle: nothing to do, every process measured over the same window --------------------
  // Right after work V8 is still collecting that work's garbage (in the daemon a full GC
  // lands 10-20 s later); "idle" is judged on a later window, and the first one is shown too.
  const idlePids = { daemon: d1.pid, nodeRed: worker.pid, baseline: baseline.pid, bare: bare.pid };
  const measureIdle = async (): Promise<Record<keyof typeof idlePids, CpuUse>> => {
    const before = Object.fromEntries(Object.entries(idlePids).map(([name, pid]) => [name, cpuSample(pid)]));
    await pause(plan.idleMs);
    return Object.fromEntries(Object.entries(idlePids).map(([name, pid]) => [name, cpuUse(before[name] as ReturnType<typeof cpuSample>, cpuSample(pid))])) as Record<keyof typeof idlePids, CpuUse>;
  };
  log(`idle CPU over ${plan.idleMs / 1000} s, then again after ${plan.settleMs / 1000} s more`);
  await pause(1000);
  const afterWork = await measureIdle();
  await pause(plan.settleMs);
  const idle = await measureIdle();

  // --- the sidebar tab open: this driver asks as the editor's tab does, from outside Node-RED ----
  // Closed (nothing asks) is the idle window above. A few GETs first (the route's first answer
  // compiles its code), then one more window as long, CPU sampled the same way. Then the
  // worker's event loop over two more such windows, closed and open: the monitor's 1 ms timer
  // costs CPU of its own, so the CPU windows run without it.
  log(`sidebar tab: GET /file-daemon/overview every ${TAB_POLL_MS / 1000} s for ${plan.idleMs / 1000} s (CPU), then the event loop ${plan.idleMs / 1000} s closed and ${plan.idleMs / 1000} s open`);
  const tabWarmUp: string[] = [];
  for (let i = 0; i < 3; i++) {
    const error = await askOverview(overviewUrl);
    if (error !== null) tabWarmUp.push(error);
  }
  if (tabWarmUp.length > 0) log(`warning: the overview's warm-up GETs failed: ${tabWarmUp[0] ?? ""}`);
  await pause(TAB_POLL_MS);
  const [tabCpu, tabCpuPoll] = await Promise.all([measureIdle(), openTab(overviewUrl, plan.idleMs)]);
  const tabClosedEld = await worker.request<EventLoopDelay>({ op: "quiet", ms: plan.idleMs });
  const [tabOpenEld, tabEldPoll] = await Promise.all([worker.request<EventLoopDelay>({ op: "quiet", ms: plan.idleMs }), openTab(overviewUrl, plan.idleMs, TAB_ELD_OFFSET_MS)]);

  // --- floor ---------------------------------------------------------------------------------
  log("floor: spawn sh -c true");
  const floor: number[] = [];
  for (let round = 0; round < plan.floor[1]; round++) for (let i = 0; i < plan.floor[0]; i++) floor.push(await spawnTrue());

  // --- sequential and memory -------------------------------------------------------------------
  let engine: number[] = [];
  let poll: number[] = [];
  let burstExec: BurstResult[] = [];
  let burstOurs: BurstResult[] = [];
  let streamed: StreamResult | null = null;
  /** dN's memory every 100 ms during our bursts: RssAnon has no high-water mark of its own. */
  const burstSamples: Sample[] = [];
  let free: number[] = [];
  let busy: number[] = [];
  let sleepEnded = Number.NaN;
  let forksOurs: ForkCount | null = null;
  let forksExec: ForkCount | null = null;

  // +0 first (it is also the plain sequential comparison, with tmpfs beside it), in a fresh
  // Node-RED process started with the same flags as each memory row's.
  log(`sequential, exec node vs ours (files on ${fileSystemOf(dir)}${dTmpfs === null ? "" : " and tmpfs"}), a fresh Node-RED holding +0 MiB`);
  const atZero = await heapRow(null, 0, d1, dTmpfs, plan.seq);
  const heap: HeapRow[] = [atZero];
  // The engine and the rest run in the long-lived worker, while it is still small.
  await engineAndChannels();
  // Then each size of each kind of memory in a fresh Node-RED process.
  for (const size of plan.heapMiB) {
    for (const kind of KINDS) {
      log(`sequential, exec node vs ours, a fresh Node-RED holding +${sizeText(size)} of ${KIND_LABEL[kind]}`);
      heap.push(await heapRow(kind, size, d1, null, plan.heapSeq));
    }
  }

  async function engineAndChannels(): Promise<void> {
    log("engine: wake on change vs poll only");
    engine = [];
    for (let i = 0; i < plan.engine; i++) {
      const t = performance.now();
      await submitCommand("true", d1.commands, d1.results, SLEEP_TIME);
      engine.push(performance.now() - t);
    }
    poll = [];
    for (let i = 0; i < plan.poll; i++) {
      const t = performance.now();
      await submitCommand("true", dPoll.commands, dPoll.results, SLEEP_TIME, { watch: false });
      poll.push(performance.now() - t);
    }

    log(`burst of ${BURST}: exec node vs ours on ${channels} channels`);
    burstExec = [];
    burstOurs = [];
    for (let round = 0; round < plan.burstRounds; round++) {
      burstExec.push(await worker.request<BurstResult>({ op: "burst", nodes: ["exec"], count: BURST }));
      // One node queues at most 100 messages (plus one per channel running): two nodes share the daemon.
      const sampling = startSampling(dN.pid, 100);
      burstOurs.push(await worker.request<BurstResult>({ op: "burst", nodes: ["oursN", "oursN2"], count: BURST, payload: "true" }));
      burstSamples.push(...sampling.stop());
    }

    log("stream: seq 100000 through the node's second output");
    // Twice: the first run compiles the paths; the second is the one shown.
    await worker.request<StreamResult>({ op: "stream", node: "oursStream" });
    streamed = await worker.request<StreamResult>({ op: "stream", node: "oursStream" });

    log(`busy channel: sleep ${plan.sleepS} s on one of ${channels} channels`);
    free = (await worker.request<SeqResult>({ op: "seq", node: "oursN", count: plan.busyCount, payload: "true" })).latencies;
    const sleepStarted = performance.now();
    const ticket = await worker.request<string>({ op: "start", node: "oursN", payload: `sleep ${plan.sleepS}` });
    await pause(Math.min(500, plan.sleepS * 300));
    busy = (await worker.request<SeqResult>({ op: "seq", node: "oursN", count: plan.busyCount, payload: "true" })).latencies;
    const busyDone = performance.now() - sleepStarted;
    if (busyDone >= plan.sleepS * 1000) log(`warning: the \`true\` runs ended after the sleep (${ms(busyDone)})`);
    sleepEnded = await worker.request<number>({ op: "await", ticket });

    if (straceAvailable()) {
      log("forks counted with strace");
      forksOurs = await countForks(worker.pid, path.join(dir, "strace.ours"), async () => {
        await worker.request({ op: "seq", node: "ours", count: plan.straceMessages });
      });
      forksExec = await countForks(worker.pid, path.join(dir, "strace.exec"), async () => {
        await worker.request({ op: "seq", node: "exec", count: plan.straceMessages });
      });
    } else {
      log("strace not found: forks counted through the child_process APIs only");
    }
  }

  const afterBurst = { daemon: memoryOf(d1.pid), daemonN: memoryOf(dN.pid), bare: memoryOf(bare.pid) };

  // --- soak: a daemon of its own, the client (no Node-RED) at a steady rate ---------------------
  const soaked = soakSeconds > 0 ? await soak(dir, soakSeconds, stops) : null;
  const bareAtEnd = memoryOf(bare.pid);

  // --- the table ---------------------------------------------------------------------------------
  const floorMs = median(floor);
  const execMs = median(atZero.exec.latencies);
  const oursMs = median(atZero.ours.latencies);
  const rows: Row[] = [];
  rows.push({ what: LABELS.floor, figure: `${ms(floorMs)} per call (n=${floor.length})` });
  rows.push({ what: `${LABELS.execSeq} (\`exec\` mode: /bin/bash -c)`, figure: `${ms(execMs)}/msg (n=${atZero.exec.messages}); ${eldText(atZero.exec)}` });
  const seqRatio = ratio(oursMs, execMs);
  // T1: ≤ 1.0× the exec node with the files on ext4 (the default --dir), ≤ 0.6× on tmpfs. A --dir on tmpfs is judged by the tmpfs threshold.
  const mainFs = fileSystemOf(dir);
  const mainLimit = mainFs === "tmpfs" ? T1_TMPFS : T1_DISK;
  rows.push({
    what: `${LABELS.oursSeq} (sleep ${SLEEP_TIME} s, 1 channel, files on ${mainFs})`,
    figure: `${ms(oursMs)}/msg (n=${atZero.ours.messages}) = ${times(seqRatio)} exec node, ${times(ratio(oursMs, floorMs))} floor; ${eldText(atZero.ours)}`,
    target: `T1: ≤ ${fmt(mainLimit, 1)}× exec node${mainFs === "tmpfs" ? " (tmpfs)" : mainFs === "ext4" ? "" : ` (stated for ext4; here ${mainFs})`}`,
    verdict: verdict(seqRatio <= mainLimit),
  });
  const tmpfs = atZero.tmpfs;
  const tmpfsRatio = tmpfs === null ? Number.NaN : ratio(median(tmpfs.latencies), execMs);
  rows.push({
    what: LABELS.oursTmpfs,
    figure: tmpfs === null ? "n/a (no /dev/shm, or the files are on tmpfs already)" : `${ms(median(tmpfs.latencies))}/msg (n=${tmpfs.messages}) = ${times(tmpfsRatio)} exec node; ${eldText(tmpfs)}`,
    target: `T1: ≤ ${fmt(T1_TMPFS, 1)}× exec node`,
    verdict: tmpfs === null ? "n/a" : verdict(tmpfsRatio <= T1_TMPFS),
  });
  const engineMs = median(engine);
  const pollMs = median(poll);
  rows.push({ what: LABELS.engineWatch, figure: `${ms(engineMs)}/command (n=${engine.length})` });
  rows.push({ what: `${LABELS.enginePoll}, sleep ${SLEEP_TIME} s`, figure: `${ms(pollMs)}/command (n=${poll.length}): wake on change is ${times(ratio(pollMs, engineMs))} faster` });
  const throughput = (bursts: BurstResult[]) => median(bursts.map((b) => (1000 * b.ok) / b.elapsedMs));
  const failedOf = (bursts: BurstResult[]) => bursts.reduce((sum, b) => sum + b.failed, 0);
  const tExec = throughput(burstExec);
  const tOurs = throughput(burstOurs);
  const burstNote = (bursts: BurstResult[]) => (failedOf(bursts) > 0 ? `, ${failedOf(bursts)} failed (${bursts.find((b) => b.firstError)?.firstError ?? ""})` : "");
  rows.push({ what: LABELS.burstExec, figure: `${fmt(tExec, 0)} msgs/s (${burstExec.length} round(s)${burstNote(burstExec)}); event loop max ${fmt(Math.max(...burstExec.map((b) => b.eld.max)), 0)} ms` });
  rows.push({
    what: `${LABELS.burstOurs}, ${channels} channels (cores × 2), 2 nodes × 100`,
    figure: `${fmt(tOurs, 0)} msgs/s = ${times(ratio(tOurs, tExec))} exec node${burstNote(burstOurs)}; event loop max ${fmt(Math.max(...burstOurs.map((b) => b.eld.max)), 0)} ms`,
    target: `T2: ≥ ${fmt(T2_BURST, 1)}× exec node`,
    verdict: verdict(failedOf(burstOurs) === 0 && tOurs >= T2_BURST * tExec),
  });
  const stream = streamed as StreamResult | null;
  if (stream !== null) {
    const p99Over = stream.eld.p99 - stream.idle.p99;
    const maxOver = stream.eld.max - stream.idle.max;
    rows.push({
      what: LABELS.stream,
      figure: `${stream.lines} lines in ${fmt(stream.elapsedMs / 1000, 2)} s (${fmt((1000 * stream.lines) / stream.elapsedMs, 0)} lines/s), streamed ${stream.streamed}, missed ${stream.missed}; event loop p99 ${fmt(stream.eld.p99, 1)} / max ${fmt(stream.eld.max, 1)} ms vs idle ${fmt(stream.idle.p99, 1)} / ${fmt(stream.idle.max, 1)} ms (${signedMs(p99Over)} / ${signedMs(maxOver)})`,
      target: `every line; p99 ≤ idle + ${T4_P99} ms, max ≤ idle + ${T4_MAX} ms`,
      verdict: verdict(stream.lines === 100_000 && stream.missed === 0 && p99Over <= T4_P99 && maxOver <= T4_MAX),
    });
  }
  const freeMs = median(free);
  const busyMs = median(busy);
  const busyRatio = ratio(busyMs, freeMs);
  rows.push({ what: `${LABELS.freeChannel} (${channels})`, figure: `${ms(freeMs)}/msg (n=${free.length})` });
  rows.push({
    what: `${LABELS.busyChannel} (${plan.sleepS} s)`,
    figure: `${ms(busyMs)}/msg (n=${busy.length}) = ${times(busyRatio)} free; the sleep's own message took ${fmt(sleepEnded / 1000, 2)} s`,
    target: "≤ 2× free",
    verdict: verdict(busyRatio <= 2),
  });
  const idleS = fmt(idle.daemon.seconds, 0);
  const firstS = `first ${fmt(afterWork.daemon.seconds, 0)} s after work`;
  rows.push({
    what: `${LABELS.daemonIdle} (${idleS} s, sleep ${SLEEP_TIME} s)`,
    figure: `${fmt(idle.daemon.percent, 3)} % of a core (utime+stime: ${idle.daemon.ticks} tick(s)); ${firstS}: ${fmt(afterWork.daemon.percent, 3)} %; bare node ${fmt(idle.bare.percent, 3)} %`,
    target: "≤ 0.2 %",
    verdict: verdict(idle.daemon.percent <= 0.2),
  });
  const idleCost = idle.nodeRed.percent - idle.baseline.percent;
  const firstCost = afterWork.nodeRed.percent - afterWork.baseline.percent;
  const signed = (value: number) => `${value >= 0 ? "+" : ""}${fmt(value, 3)}`;
  rows.push({
    what: `${LABELS.nodeRedIdle} (${idleS} s; ${dTmpfs === null ? 2 : 3} config nodes, external mode)`,
    figure: `${fmt(idle.nodeRed.percent, 3)} % vs ${fmt(idle.baseline.percent, 3)} % (Δ ${signed(idleCost)} % of a core; ticks ${idle.nodeRed.ticks} vs ${idle.baseline.ticks}); ${firstS}: Δ ${signed(firstCost)} %`,
    target: "no measurable cost (Δ ≤ 0.1 %)",
    verdict: verdict(idleCost <= 0.1),
  });
  // The tab: CPU in the window it was open against the idle window (closed); the event loop in two windows of their own.
  const tabCost = tabCpu.nodeRed.percent - idle.nodeRed.percent;
  const tabP99Over = tabOpenEld.p99 - tabClosedEld.p99;
  const tabMaxOver = tabOpenEld.max - tabClosedEld.max;
  const tabFailed = tabWarmUp.length + tabCpuPoll.failed + tabEldPoll.failed;
  const tabFirstError = tabWarmUp[0] ?? tabCpuPoll.firstError ?? tabEldPoll.firstError;
  const tabAnswers = [...tabCpuPoll.latencies, ...tabEldPoll.latencies];
  rows.push({
    what: `${LABELS.sidebarTab} (GET /file-daemon/overview every ${fmt(TAB_POLL_MS / 1000, 0)} s, as the open tab asks while nothing changes; ${tabCpuPoll.requests} request${tabCpuPoll.requests === 1 ? "" : "s"} in ${idleS} s for CPU, ${tabEldPoll.requests} for the event loop; ${tabFailed} failed${tabFirstError === null ? "" : ` (${tabFirstError})`})`,
    figure:
      `CPU ${fmt(tabCpu.nodeRed.percent, 3)} % vs ${fmt(idle.nodeRed.percent, 3)} % of a core (Δ ${signed(tabCost)} %, ≈ ${fmt((tabCost * 10 * tabCpu.nodeRed.seconds) / tabCpuPoll.requests, 2)} ms per answer; ticks ${tabCpu.nodeRed.ticks} vs ${idle.nodeRed.ticks}; ` +
      `baseline Node-RED ${fmt(tabCpu.baseline.percent, 3)} % vs ${fmt(idle.baseline.percent, 3)} %, daemon ${fmt(tabCpu.daemon.percent, 3)} % vs ${fmt(idle.daemon.percent, 3)} %); ` +
      `event loop p99 ${fmt(tabOpenEld.p99, 1)} vs ${fmt(tabClosedEld.p99, 1)} ms (${signedMs(tabP99Over)}), max ${fmt(tabOpenEld.max, 1)} vs ${fmt(tabClosedEld.max, 1)} ms (${signedMs(tabMaxOver)}); ` +
      `answer ${ms(median(tabAnswers))} (median; max ${ms(Math.max(...tabAnswers))})`,
    target: `Δ CPU ≤ ${fmt(TAB_CPU, 1)} % of a core; p99 ≤ closed + ${T4_P99} ms, max ≤ closed + ${T4_MAX} ms; every answer 200, JSON, ≥ ${TAB_MIN_DAEMONS} daemons`,
    verdict: verdict(tabFailed === 0 && tabCost <= TAB_CPU && tabP99Over <= T4_P99 && tabMaxOver <= T4_MAX),
  });
  // T3, all judged on VmHWM against the bare node's VmHWM; the RssAnon rows are information.
  const bareHwm = afterBurst.bare.VmHWM;
  const idleRatio = ratio(idleMemory.daemon.VmHWM, idleMemory.bare.VmHWM);
  rows.push({
    what: LABELS.daemonIdleRss,
    figure: `VmHWM ${mib(idleMemory.daemon.VmHWM)} vs ${mib(idleMemory.bare.VmHWM)} = ${times(idleRatio)}; VmRSS ${mib(idleMemory.daemon.VmRSS)} vs ${mib(idleMemory.bare.VmRSS)}`,
    target: `T3: ≤ ${fmt(T3_IDLE, 1)}× bare node (VmHWM)`,
    verdict: verdict(idleRatio <= T3_IDLE),
  });
  rows.push({
    what: LABELS.daemonIdlePrivate,
    figure: `RssAnon ${mib(idleMemory.daemon.RssAnon)} vs ${mib(idleMemory.bare.RssAnon)} = ${times(ratio(idleMemory.daemon.RssAnon, idleMemory.bare.RssAnon))} (RssFile ${mib(idleMemory.daemon.RssFile)} vs ${mib(idleMemory.bare.RssFile)})`,
    target: "information",
  });
  const burstRatio = ratio(afterBurst.daemonN.VmHWM, bareHwm);
  const seqDaemonRatio = ratio(afterBurst.daemon.VmHWM, bareHwm);
  const memText = (m: Memory) => `VmHWM ${mib(m.VmHWM)} = ${times(ratio(m.VmHWM, bareHwm))}, VmRSS now ${mib(m.VmRSS)}`;
  rows.push({
    what: LABELS.daemonRss,
    figure: `${channels}-channel daemon (ran the bursts): ${memText(afterBurst.daemonN)}; 1-channel daemon (the sequential rows): ${memText(afterBurst.daemon)}; bare node VmHWM ${mib(bareHwm)}, VmRSS ${mib(afterBurst.bare.VmRSS)}; judged: the larger`,
    target: `T3: ≤ ${fmt(T3_BURST, 1)}× bare node (VmHWM)`,
    verdict: verdict(Math.max(burstRatio, seqDaemonRatio) <= T3_BURST),
  });
  const anonPeak = (samples: readonly Sample[]) => Math.max(...samples.map((x) => x.memory.RssAnon));
  const bareAnon = afterBurst.bare.RssAnon;
  rows.push({
    what: LABELS.daemonPrivate,
    figure: `${channels}-channel daemon: peak ${mib(anonPeak(burstSamples))} = ${times(ratio(anonPeak(burstSamples), bareAnon))} bare node's, now ${mib(afterBurst.daemonN.RssAnon)}; 1-channel daemon now ${mib(afterBurst.daemon.RssAnon)}; bare node ${mib(bareAnon)} (RssFile: ${mib(afterBurst.daemonN.RssFile)} vs ${mib(afterBurst.bare.RssFile)})`,
    target: "information",
  });
  const soakRatio = soaked === null ? Number.NaN : ratio(soaked.end.VmHWM, bareAtEnd.VmHWM);
  const series = (samples: readonly Sample[], field: "VmRSS" | "RssAnon") => {
    const values = samples.map((x) => x.memory[field]);
    return `first ${mib(values[0] ?? Number.NaN)}, peak ${mib(Math.max(...values))}, last ${mib(values.at(-1) ?? Number.NaN)}`;
  };
  rows.push({
    what: `${LABELS.soak} (${soaked === null ? "skipped" : `${fmt(soaked.seconds, 0)} s`}, ${SOAK_RATE} commands/s, ${SOAK_CHANNELS} channels, through the client)`,
    figure:
      soaked === null
        ? "skipped (--soak 0)"
        : `VmHWM ${mib(soaked.end.VmHWM)} = ${times(soakRatio)} bare node's ${mib(bareAtEnd.VmHWM)}; VmRSS ${series(soaked.samples, "VmRSS")}; open fds ${Math.min(...soaked.samples.map((x) => x.fds))}–${Math.max(...soaked.samples.map((x) => x.fds))}; ${soaked.ok} commands ok, ${soaked.failed} failed${soaked.firstError === null ? "" : ` (${soaked.firstError})`}, channels used ${soaked.channels.join("/")}, at most ${soaked.maxInFlight} in flight`,
    target: `T3: ≤ ${fmt(T3_SOAK, 1)}× bare node (VmHWM)`,
    verdict: soaked === null ? "n/a" : verdict(soaked.failed === 0 && soakRatio <= T3_SOAK),
  });
  rows.push({
    what: LABELS.soakPrivate,
    figure: soaked === null ? "skipped (--soak 0)" : `RssAnon ${series(soaked.samples, "RssAnon")}; bare node ${mib(bareAtEnd.RssAnon)}`,
    target: "information",
  });
  const all = heap.reduce((acc, h) => ({ ours: acc.ours + h.ours.spawns, oursN: acc.oursN + h.ours.messages, exec: acc.exec + h.exec.spawns, execN: acc.execN + h.exec.messages }), { ours: 0, oursN: 0, exec: 0, execN: 0 });
  rows.push({
    what: LABELS.forksApi,
    figure: `ours ${fmt(all.ours / all.oursN, 2)} (${all.ours} in ${all.oursN} msgs); exec node ${fmt(all.exec / all.execN, 2)} (${all.exec} in ${all.execN})`,
    target: "T5: 0 (ours)",
    verdict: verdict(all.ours === 0),
  });
  const oursForks = forksOurs as ForkCount | null;
  const execForks = forksExec as ForkCount | null;
  rows.push({
    what: LABELS.forksStrace,
    figure:
      oursForks === null || execForks === null
        ? "n/a (strace not installed)"
        : `ours ${fmt(oursForks.processes / plan.straceMessages, 2)} (${oursForks.processes} in ${plan.straceMessages} msgs); exec node ${fmt(execForks.processes / plan.straceMessages, 2)} (${execForks.processes} in ${plan.straceMessages})`,
    target: "T5: 0 (ours)",
    verdict: oursForks === null ? "n/a" : verdict(oursForks.processes === 0),
  });
  const heapWhat = (h: HeapRow) => `${LABELS.heap}${h.kind === null ? "0 MiB" : `${sizeText(h.mib)} of ${KIND_LABEL[h.kind]}`}, fresh process`;
  for (const h of heap) {
    const e = median(h.exec.latencies);
    const o = median(h.ours.latencies);
    const quiet = eldOver(h.idle);
    rows.push({
      what: `${heapWhat(h)} (${heldText(h.held)})`,
      figure: `exec node ${ms(e)}/msg, ${eldText(h.exec)}; ours ${ms(o)}/msg = ${times(ratio(o, e))} exec, ${eldText(h.ours)}; idle event loop p99 ${fmt(quiet.p99, 1)} / max ${fmt(quiet.max, 1)} ms`,
    });
  }
  const o0 = median(atZero.ours.latencies);
  const largest = (kind: MemoryKind) => heap.filter((h) => h.kind === kind).at(-1);
  const againstZero = (h: HeapRow) => {
    const o1 = median(h.ours.latencies);
    return { unchanged: ratio(o1, o0), vsExec: ratio(o1, median(h.exec.latencies)) };
  };
  const lastBuffers = largest("buffers");
  if (lastBuffers !== undefined) {
    const { unchanged, vsExec } = againstZero(lastBuffers);
    rows.push({
      what: LABELS.heapTarget,
      figure: `+${sizeText(lastBuffers.mib)} of Buffers: ours ${times(unchanged)} its +0 time; ${times(vsExec)} the exec node's`,
      target: "≤ 1.25× +0 (noise) and ≤ 0.15× exec",
      verdict: verdict(unchanged <= 1.25 && vsExec <= 0.15),
    });
  }
  const lastObjects = largest("objects");
  if (lastObjects !== undefined) {
    const { unchanged, vsExec } = againstZero(lastObjects);
    rows.push({
      what: LABELS.heapTargetObjects,
      figure: `+${sizeText(lastObjects.mib)} of JS objects: ours ${times(unchanged)} its +0 time; ${times(vsExec)} the exec node's (the V8 heap is MADV_DONTFORK: compare the exec node here with the Buffers row)`,
      target: "not judged",
    });
  }
  // T4: in each fresh Node-RED (every heap size), ours' p99 and max against the same process idle, in windows between ours' rounds.
  const loops = heap.map((h) => {
    const running = eldOver(h.ours.eld);
    const quiet = eldOver(h.idle);
    return { h, running, quiet, p99Over: running.p99 - quiet.p99, maxOver: running.max - quiet.max };
  });
  const worst = (key: "p99Over" | "maxOver") => loops.reduce((a, b) => (b[key] > a[key] ? b : a));
  const p99Worst = worst("p99Over");
  const maxWorst = worst("maxOver");
  const rowName = (h: HeapRow) => (h.kind === null ? "+0" : `+${sizeText(h.mib)} of ${h.kind}`);
  const eldOk = loops.every((l) => l.p99Over <= T4_P99 && l.maxOver <= T4_MAX);
  rows.push({
    what: LABELS.eldOurs,
    figure: `worst p99: ${fmt(p99Worst.running.p99, 1)} vs idle ${fmt(p99Worst.quiet.p99, 1)} ms (${signedMs(p99Worst.p99Over)}, ${rowName(p99Worst.h)}); worst max: ${fmt(maxWorst.running.max, 1)} vs idle ${fmt(maxWorst.quiet.max, 1)} ms (${signedMs(maxWorst.maxOver)}, ${rowName(maxWorst.h)}); exec node's max ${fmt(Math.max(...heap.map((h) => maxEld(h.exec))), 1)} ms`,
    target: `T4: p99 ≤ idle + ${T4_P99} ms, max ≤ idle + ${T4_MAX} ms, in every row`,
    verdict: verdict(eldOk),
  });

  // --- issue #12's targets, each from the rows above -------------------------------------------
  const part = (ok: boolean | null, text: string) => ({ ok, text: `${text} ${word(ok)}` });
  const oursBurstFailed = failedOf(burstOurs);
  const targets: Target[] = [
    target("T1", "sequential `true`, ours / exec node", [
      part(seqRatio <= mainLimit, `files on ${mainFs} ${times(seqRatio)} (≤ ${fmt(mainLimit, 1)}×)`),
      part(tmpfs === null ? null : tmpfsRatio <= T1_TMPFS, `tmpfs ${times(tmpfsRatio)} (≤ ${fmt(T1_TMPFS, 1)}×)`),
    ]),
    target("T2", `burst of ${BURST}, ours / exec node throughput`, [part(oursBurstFailed === 0 && tOurs >= T2_BURST * tExec, `${times(ratio(tOurs, tExec))} (≥ ${fmt(T2_BURST, 1)}×)${oursBurstFailed > 0 ? `, ${oursBurstFailed} failed` : ""}`)]),
    target("T3", "daemon VmHWM / bare node's", [
      part(idleRatio <= T3_IDLE, `idle ${times(idleRatio)} (≤ ${fmt(T3_IDLE, 1)}×)`),
      part(Math.max(burstRatio, seqDaemonRatio) <= T3_BURST, `after the burst ${times(Math.max(burstRatio, seqDaemonRatio))} (≤ ${fmt(T3_BURST, 1)}×)`),
      part(soaked === null ? null : soaked.failed === 0 && soakRatio <= T3_SOAK, `soak ${soaked === null ? "skipped" : times(soakRatio)} (≤ ${fmt(T3_SOAK, 1)}×)`),
    ]),
    target("T4", "Node-RED's event loop while ours runs, over the same process idle (worst row)", [
      part(loops.every((l) => l.p99Over <= T4_P99), `p99 ${signedMs(p99Worst.p99Over)} (≤ +${T4_P99} ms)`),
      part(loops.every((l) => l.maxOver <= T4_MAX), `max ${signedMs(maxWorst.maxOver)} (≤ +${T4_MAX} ms)`),
    ]),
    target("T5", "forks of Node-RED per message, ours", [
      part(all.ours === 0, `${fmt(all.ours / all.oursN, 2)} counting child_process calls (= 0)`),
      part(oursForks === null ? null : oursForks.processes === 0, `${oursForks === null ? "n/a (no strace)" : fmt(oursForks.processes / plan.straceMessages, 2)} counting clone/fork under strace (= 0)`),
    ]),
  ];
  const targetsLine = `targets: ${targets.map((t) => `${t.id} ${word(t.ok)}`).join("  ")}`;

  const seconds = (performance.now() - started) / 1000;
  const heldInAll = plan.heapMiB.reduce((sum, size) => sum + size * KINDS.length, 0);
  const memoryRows = `Memory:   +${plan.heapMiB.map(sizeText).join(", +")} of each kind (${KINDS.map((k) => KIND_LABEL[k]).join("; ")}), each size and kind in a fresh Node-RED process (${sizeText(heldInAll)} held in all, one process at a time)`;
  process.stdout.write(
    `\n${machineInfo(nodeRed, dir, loadAtStart)}\nMode:     ${plan.quick ? "--quick (few iterations, short idle and sleep phases)" : "full"}${summary ? "; one of the Nodes this run measures, one table each" : plan.quick ? "; this Node only (--compare-node: Node 22 and 24)" : ""}; measured in ${fmt(seconds, 0)} s\n${memoryRows}\n\n`,
  );
  process.stdout.write(renderTable(rows));
  writeFooter(plan);
  process.stdout.write(`${targetsLine}\n${targets.map((t) => `  ${t.id} ${word(t.ok)}  ${t.text}`).join("\n")}\n  (issue #12's targets, each measured in this run; a FAIL is a MISS in the table above)\n`);
  if (summary) {
    const cellOf = (stats: SeqStats) => `${ms(median(stats.latencies))}/msg, loop max ${fmt(maxEld(stats), 1)} ms`;
    const result: NodeSummary = {
      node: nodeRed.node,
      uv: nodeRed.uv,
      execPath: nodeRed.execPath,
      seconds,
      targets: targetsLine,
      rows: heap.map((h) => ({ what: h.kind === null ? "+0 MiB" : `+${sizeText(h.mib)} of ${KIND_LABEL[h.kind]}`, exec: cellOf(h.exec), ours: cellOf(h.ours) })),
    };
    process.stdout.write(`${SUMMARY_MARK}${JSON.stringify(result)}\n`);
  }
  return 0;
}

function writeFooter(plan: Plan): void {
  process.stdout.write(
    [
      "",
      "Medians over all messages of all rounds; ratios are of medians from this run. \"Event loop\": monitorEventLoopDelay({resolution: 1})",
      "in the Node-RED process while the messages ran; it records the interval between 1 ms timer ticks, so 1.0 ms means no delay.",
      "T4's idle: the same process with nothing to do, in a window as long as each round of ours, right after it; p99 is the",
      "median of the rounds' p99, max the largest, alike for both. The +0 row (and T1) runs in a fresh Node-RED with the memory rows' flags.",
      `Idle CPU: /proc/PID/task/*/schedstat (ns), utime+stime ticks beside it; judged on a window that starts ${fmt((1000 + plan.idleMs + plan.settleMs) / 1000, 0)} s after the last`,
      "work (V8 is still collecting that work's garbage in the first window). Sidebar tab: this driver GETs the overview",
      `from the first Node-RED's RED.httpAdmin (the test helper's express app on 127.0.0.1, no adminAuth) every ${fmt(TAB_POLL_MS / 1000, 0)} s after the previous answer,`,
      "as the open tab does; its CPU over a window as long, right after the judged idle one (closed); its event loop in two more",
      "such windows, closed then open (without the CPU windows: the 1 ms monitor has a cost of its own). Forks: child_process calls wrapped",
      "in the Node-RED process, and clone/fork syscalls of its threads under strace -f.",
      "Memory figures: the daemons' and the bare node's from /proc/PID/status: VmHWM (peak resident set; what T3 judges), VmRSS",
      "(resident now) and, as information, RssAnon (private: the process's own) beside RssFile (mapped files, chiefly the node",
      "binary, whose pages every node on the machine shares, Node-RED's included); RssAnon has no peak, so it is sampled. A Node-RED row's are",
      "that process's right after it took its memory, from process.memoryUsage(): VmRSS (rss, resident now), V8 heapUsed (after a",
      "full GC) and external (off-heap memory V8 knows of, Buffers among it). RAM on the CPU line is os.totalmem() (MemTotal).",
      "Buffers are off the V8 heap: fork() copies their page tables. The V8 heap's pages are MADV_DONTFORK since Node 20.4",
      "(nodejs/node#48523): fork() leaves them out, so the same amount of JS objects should cost the exec node's fork less;",
      "the two kinds' rows of the same size show how much less on this machine and this Node.",
      "",
    ].join("\n"),
  );
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
