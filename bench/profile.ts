/**
 * `npm run profile`: where each millisecond of one round trip goes (issue #12).
 *
 *   node dist/bench/profile.js [--rounds N] [--warmup W] [--dir DIR] [--strace-rounds M]
 *
 * A real daemon (`node --max-semi-space-size=1 -r profile-hook.js bin/file-daemon.js …`) and a
 * submitter process (profile-submitter.js, also with the hook) on a private directory; W
 * commands to warm up, then N `submitCommand("true", …)` one at a time. Both processes record
 * their lock directories, renames, change events and forks (profile-hook.ts); their logs are
 * merged into one timeline and each round is cut into phases at its lock events
 * (profile-timeline.ts). Then M more rounds with `strace -c` on both main threads, for the
 * syscall counts (0: none), and N raw spawns of `/bin/sh -c true` from this process, for scale.
 *
 * Directories: a fresh one under /dev/shm (tmpfs) and one under os.tmpdir(), or under --dir.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DAEMON_NODE_FLAGS } from "../src/shared/daemon-node-flags";
import { readLiveDaemon } from "../src/protocol/io/live-daemon";
import { daemonFiles } from "../src/protocol/paths";
import { alive, CLI, stopChild } from "./children";
import { analyse, formatRound, merge, PHASES, PROFILE_LOG_ENV, SPAWN_LABEL, TOTAL_LABEL, type Analysis, type ProfileLog, type Side } from "./profile-timeline";
import type { SubmitterReply, SubmitterRequest } from "./profile-submitter";
import { countSyscalls, type SyscallCount } from "./profile-syscalls";
import { fileSystemOf } from "./proc";
import { straceAvailable } from "./strace";
import { fmt, median, quantile } from "./stats";

const HOOK = path.join(__dirname, "profile-hook.js");
const SUBMITTER = path.join(__dirname, "profile-submitter.js");
const SLEEP_TIME = 0.5;

interface Plan {
  readonly rounds: number;
  readonly warmup: number;
  readonly straceRounds: number;
  /** Print the merged timeline of this many rounds (stderr). */
  readonly timeline: number;
}

const started = new Set<ChildProcess>();
/** Private directories to remove, also after Ctrl-C. */
const roots = new Set<string>();

function log(line: string): void {
  process.stderr.write(`profile: ${line}\n`);
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (!alive(child)) resolve();
    else child.once("exit", () => resolve());
  });
}

function track(child: ChildProcess): { readonly exited: Promise<void>; readonly output: () => string } {
  started.add(child);
  let text = "";
  const keep = (chunk: Buffer) => (text = (text + chunk.toString()).slice(-20_000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = exitOf(child).then(() => void started.delete(child));
  return { exited, output: () => text };
}

/** One request to the submitter, its reply; rejects if it exits first. */
function ask<T extends SubmitterReply>(child: ChildProcess, request: SubmitterRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the submitter exited (${code}) during ${request.op}`));
    child.once("exit", onExit);
    child.once("message", (reply: SubmitterReply) => {
      child.off("exit", onExit);
      if (reply.ok) resolve(reply as T);
      else reject(new Error(`submitter: ${reply.error}`));
    });
    child.send(request);
  });
}

/** `spawn('/bin/sh', ['-c', 'true'])` from this process: ms until its 'exit' event. */
function rawSpawn(): Promise<number> {
  const begin = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", "true"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve(performance.now() - begin));
  });
}

interface Measured {
  readonly dir: string;
  readonly fileSystem: string;
  readonly analysis: Analysis;
  /** The submitter's own clock around each measured call (ms). */
  readonly totals: readonly number[];
  readonly spawnMs: readonly number[];
  readonly overheadUs: number;
  readonly syscalls: Readonly<Record<Side, SyscallCount>> | string;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function profileIn(base: string, plan: Plan): Promise<Measured> {
  const root = mkdtempSync(path.join(base, "file-daemon-profile-"));
  roots.add(root);
  try {
    // The channel files alone in a directory of their own: the logs are written beside it, unwatched.
    const dir = path.join(root, "files");
    mkdirSync(dir, { mode: 0o700 });
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const logs: Record<Side, string> = { daemon: path.join(root, "daemon.json"), submitter: path.join(root, "submitter.json") };

    const daemon = spawn(process.execPath, [...DAEMON_NODE_FLAGS, "-r", HOOK, CLI, results, commands, String(SLEEP_TIME)], {
      env: { ...process.env, [PROFILE_LOG_ENV]: logs.daemon },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const daemonRun = track(daemon);
    const files = daemonFiles(commands, results);
    await waitUntil(`the daemon to serve ${dir}`, () => !alive(daemon) || readLiveDaemon(files)?.pid === daemon.pid, 15_000);
    if (!alive(daemon)) throw new Error(`the daemon exited: ${daemonRun.output()}`);

    const submitter = fork(SUBMITTER, [], { execArgv: ["-r", HOOK], env: { ...process.env, [PROFILE_LOG_ENV]: logs.submitter }, stdio: ["ignore", "pipe", "pipe", "ipc"] });
    const submitterRun = track(submitter);
    let totals: readonly number[];
    let overheadUs: number;
    let syscalls: Measured["syscalls"];
    const spawnMs: number[] = [];
    try {
      const run = { op: "run", commands, results, sleepTime: SLEEP_TIME } as const;
      log(`${dir}: ${plan.warmup} warm-up commands, then ${plan.rounds} rounds`);
      const measured = await ask<Extract<SubmitterReply, { totals: unknown }>>(submitter, { ...run, warmup: plan.warmup, rounds: plan.rounds, marked: true });
      if (!measured.recording) throw new Error(`the submitter did not load the hook (${HOOK})`);
      totals = measured.totals;
      overheadUs = (await ask<Extract<SubmitterReply, { overheadUs: number }>>(submitter, { op: "overhead" })).overheadUs;
      if (plan.straceRounds === 0) syscalls = "not counted (--strace-rounds 0)";
      else if (!straceAvailable()) syscalls = "not counted (strace not found)";
      else {
        log(`${plan.straceRounds} more rounds under strace -c`);
        try {
          const [s, d] = await countSyscalls([submitter.pid as number, daemon.pid as number], path.join(root, "strace"), async () => {
            await ask(submitter, { ...run, warmup: 0, rounds: plan.straceRounds, marked: false });
          });
          syscalls = { submitter: s as SyscallCount, daemon: d as SyscallCount };
        } catch (err) {
          syscalls = `not counted (${err instanceof Error ? err.message : String(err)})`;
        }
      }
      log(`${plan.rounds} raw spawns of /bin/sh -c true`);
      for (let i = 0; i < 3; i++) await rawSpawn();
      for (let i = 0; i < plan.rounds; i++) spawnMs.push(await rawSpawn());
      submitter.send({ op: "exit" } satisfies SubmitterRequest);
      await submitterRun.exited;
    } finally {
      if (alive(submitter)) submitter.kill("SIGKILL");
      // SIGTERM: the daemon stops cleanly and exits, and the hook writes its log on 'exit'.
      await stopChild(daemon, daemonRun.exited, 15_000);
    }
    if (daemon.exitCode !== 0) throw new Error(`the daemon exited ${daemon.exitCode ?? daemon.signalCode}: ${daemonRun.output()}`);
    const read = (side: Side) => JSON.parse(readFileSync(logs[side], "utf8")) as ProfileLog;
    const events = merge({ submitter: read("submitter"), daemon: read("daemon") });
    const analysis = analyse(events);
    for (const round of [...analysis.rounds, ...analysis.skipped].sort((a, b) => a.index - b.index).slice(0, plan.timeline)) {
      const why = "reason" in round ? `skipped: ${round.reason}` : `phases ${round.phases.map((p) => p.toFixed(3)).join(" ")}`;
      log(`round ${round.index} (${why}):\n${formatRound(events, round.start, round.end ?? round.start)}`);
    }
    return { dir, fileSystem: fileSystemOf(dir), analysis, totals, spawnMs, overheadUs, syscalls };
  } finally {
    rmSync(root, { recursive: true, force: true });
    roots.delete(root);
  }
}

function msText(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(value >= 10 ? 1 : 2)} ms` : "n/a";
}

function usText(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(0)} µs` : "n/a";
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

function tally<T>(values: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

function syscallText(count: SyscallCount, rounds: number): string {
  const top = count.top
    .slice(0, 6)
    .map((s) => `${s.name} ${fmt(s.calls / rounds, 1)}`)
    .join(", ");
  return `${fmt(count.calls / rounds, 0)} (${fmt(count.errors / rounds, 1)} failing; ${top})`;
}

function report(m: Measured, plan: Plan): string {
  const { rounds, skipped, spawnsBetween } = m.analysis;
  const used = rounds.length;
  const phase = (i: number) => rounds.map((r) => r.phases[i] as number);
  const totalsOfUsed = rounds.map((r) => r.end - r.start);
  const meanTotal = mean(totalsOfUsed);
  const lines = [
    `### Files in ${m.dir} (${m.fileSystem})`,
    "",
    `${plan.rounds} rounds of submitCommand("true") one at a time, after ${plan.warmup} to warm up; daemon sleep ${SLEEP_TIME} s, 1 channel, a warm shell ready. ` +
      `${used} rounds used, ${skipped.length} skipped (below). Phases end where the next begins; "ends at" names the event (the moment that call returned). ` +
      `"share": the phase's mean over the mean round trip. "daemon in fork": mean ms of the phase the daemon spent inside a spawn call (forking the next warm shell, its event loop blocked).`,
    "",
    "| Phase | ends at | median | mean | p90 | share | daemon in fork |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const [i, p] of PHASES.entries()) {
    const forking = mean(rounds.map((r) => r.forking[i] as number));
    lines.push(`| ${p.label} | ${p.until} | ${msText(median(phase(i)))} | ${msText(mean(phase(i)))} | ${msText(quantile(phase(i), 0.9))} | ${fmt((100 * mean(phase(i))) / meanTotal, 0)} % | ${forking >= 0.005 ? msText(forking) : ""} |`);
  }
  const forkingTotal = mean(rounds.map((r) => r.forking.reduce((a, b) => a + b, 0)));
  lines.push(`| **${TOTAL_LABEL}** | | **${msText(median(totalsOfUsed))}** | ${msText(meanTotal)} | ${msText(quantile(totalsOfUsed, 0.9))} | 100 % | ${msText(forkingTotal)} |`);
  lines.push(`| ${SPAWN_LABEL} | its 'exit' event | ${msText(median(m.spawnMs))} | ${msText(mean(m.spawnMs))} | ${msText(quantile(m.spawnMs, 0.9))} | | |`);
  lines.push("");

  const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
  const sumOfMedians = sum(PHASES.map((_p, i) => median(phase(i))));
  const sumOfMeans = sum(PHASES.map((_p, i) => mean(phase(i))));
  // The independent total: the submitter's own clock around each call (profile-submitter.ts), not the hook's marks.
  const unexplained = rounds.map((r) => (m.totals[r.index] ?? Number.NaN) - sum(r.phases));
  lines.push(
    `- **Adds up?** Each round's phases add up to its round trip as the submitter timed it, within median ${usText(median(unexplained) * 1000)} ` +
      `(largest ${usText(Math.max(...unexplained.map(Math.abs)) * 1000)}): nothing unexplained beyond where the marks sit. Means add up (${msText(sumOfMeans)} vs ${msText(meanTotal)}); ` +
      `medians of parts do not (${msText(sumOfMedians)} vs ${msText(median(totalsOfUsed))}): the slow rounds are slow in different phases.`,
  );
  const retried = rounds.filter((r) => r.retries.length > 0).length;
  const retryParts = [...tally(rounds.flatMap((r) => [...new Set(r.retries)])).entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([p, n]) => {
      const split = (has: boolean) => rounds.filter((r) => r.retries.includes(p) === has).map((r) => r.phases[p] as number);
      return `${n}× in ${PHASES[p]?.label ?? p} (that phase's median ${msText(median(split(true)))} with the retry, ${msText(median(split(false)))} without)`;
    });
  lines.push(
    `- **Busy retries** (in the table): in ${retried} of ${used} rounds a party woke on the other's rename, which is made inside the other's hold, found commands.lock still held, ` +
      `and took it on a later try (woken by the lock's removal, or after 2 ms)${retryParts.length > 0 ? `: ${retryParts.join("; ")}` : ""}.`,
  );
  const reasons = [...tally(skipped.map((s) => s.reason.replace(/ \(.*\)$/, ""))).entries()].map(([reason, n]) => `${n}× ${reason}`);
  const skippedTotals = skipped.flatMap((s) => (s.end === null ? [] : [s.end - s.start]));
  lines.push(
    `- **Skipped rounds:** ${skipped.length} of ${plan.rounds}${reasons.length > 0 ? ` (${reasons.join("; ")}); their median round trip ${msText(median(skippedTotals))}` : ""}. ` +
      `Median of all ${plan.rounds} rounds: ${msText(median(m.totals))}.`,
  );
  const spawns = rounds.flatMap((r) => r.spawns);
  const landed = [...tally(spawns.map((s) => s.phase)).entries()].sort((a, b) => a[0] - b[0]).map(([p, n]) => `${n}× in ${PHASES[p]?.label ?? p}`);
  const blocked = [...spawns.map((s) => s.blockedMs), ...spawnsBetween];
  lines.push(
    `- **The next warm shell's fork** (the daemon's spawn call, which blocks its event loop): ${spawns.length} in ${used} used rounds, ${spawnsBetween.length} between rounds; ` +
      `blocked median ${msText(median(blocked))}, p90 ${msText(quantile(blocked, 0.9))}; began ${landed.join(", ") || "nowhere"}.`,
  );
  const deliveries = (side: "daemon" | "submitter") => rounds.flatMap((r) => {
    const value = side === "daemon" ? r.daemonDelivery : r.submitterDelivery;
    return value === null ? [] : [value];
  });
  lines.push(
    `- **Wake-ups** (inotify to JavaScript): the submitter's rename of the commands file → the daemon's change event, median ${msText(median(deliveries("daemon")))}; ` +
      `the daemon's rename of the results file → the submitter's, median ${msText(median(deliveries("submitter")))}. ` +
      `Change events each side's JavaScript received per round: submitter ${fmt(median(rounds.map((r) => r.watchEvents.submitter)), 0)}, daemon ${fmt(median(rounds.map((r) => r.watchEvents.daemon)), 0)} (lock directories and temp files included; most wake nobody).`,
  );
  if (typeof m.syscalls === "string") lines.push(`- **Syscalls per round:** ${m.syscalls}.`);
  else {
    lines.push(
      `- **Syscalls per round** (strace -c on each main thread, ${plan.straceRounds} more rounds): submitter ${syscallText(m.syscalls.submitter, plan.straceRounds)}; ` +
        `daemon ${syscallText(m.syscalls.daemon, plan.straceRounds)}.`,
    );
  }
  const records = (side: Side) => median(rounds.map((r) => r.recorded[side]));
  const perRound = (records("submitter") + records("daemon")) * m.overheadUs;
  lines.push(
    `- **The instrumentation's own cost:** about ${fmt(m.overheadUs, 2)} µs per recorded call (a hot loop, the best case), ${fmt(records("submitter"), 0)} records per round in the submitter and ` +
      `${fmt(records("daemon"), 0)} in the daemon: roughly ${usText(perRound)} of each round trip (${fmt((100 * perRound) / 1000 / median(totalsOfUsed), 1)} %), spread over the phases.`,
  );
  return lines.join("\n");
}

function machineText(loadAtStart: number): string {
  const cpus = os.cpus();
  return [
    `Date:  ${new Date().toISOString()}`,
    `CPU:   ${cpus[0]?.model ?? "?"} × ${cpus.length} (${os.arch()}), Linux ${os.release()}`,
    `Node:  v${process.versions.node} (${process.execPath}): this driver, the submitter and the daemon`,
    `Load:  1-min load average ${loadAtStart.toFixed(2)} at the start, ${(os.loadavg()[0] ?? 0).toFixed(2)} at the end (other work on this machine adds noise)`,
  ].join("\n");
}

function count(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}, got ${value}`);
  return n;
}

/** /dev/shm when it is tmpfs, and --dir or os.tmpdir(), each once. */
function bases(given: string | undefined): string[] {
  const list = fileSystemOf("/dev/shm") === "tmpfs" ? ["/dev/shm"] : [];
  const other = path.resolve(given ?? os.tmpdir());
  if (!list.includes(other)) list.push(other);
  return list;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      warmup: { type: "string" },
      dir: { type: "string" },
      "strace-rounds": { type: "string" },
      timeline: { type: "string" },
    },
  });
  const rounds = count(values.rounds, "rounds", 50, 1);
  const plan: Plan = { rounds, warmup: count(values.warmup, "warmup", 30, 0), straceRounds: count(values["strace-rounds"], "strace-rounds", Math.min(20, rounds), 0), timeline: count(values.timeline, "timeline", 0, 0) };
  const loadAtStart = os.loadavg()[0] ?? 0;
  const reports: string[] = [];
  for (const base of bases(values.dir)) reports.push(report(await profileIn(base, plan), plan));
  process.stdout.write(`## Where a round trip's time goes\n\n${machineText(loadAtStart)}\n\n${reports.join("\n\n")}\n`);
  return 0;
}

function killAll(): void {
  for (const child of started) if (alive(child)) child.kill("SIGKILL");
  for (const root of roots) rmSync(root, { recursive: true, force: true });
}

process.once("SIGINT", () => {
  killAll();
  process.exit(130);
});

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    killAll();
    process.stderr.write(`profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
