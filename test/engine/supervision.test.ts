import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { submitCommand } from "../../src/client/submit";
import { isGone } from "../../src/supervisor/daemon-process";
import { readLease } from "../../src/protocol/io/supervision-lease";
import { Supervisor, type SupervisorStatus } from "../../src/supervisor/supervisor";
import { type PublishedInfo } from "../../src/protocol/daemon-info";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { processStartTime } from "../../src/protocol/io/liveness";
import { daemonFiles } from "../../src/protocol/paths";
import { CLI, startDaemonProcess, stopDaemonProcess, type DaemonProcess } from "../helpers/daemon-process";
import { delay, readOrEmpty } from "../helpers/small";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

const SUPERVISE = path.join(__dirname, "..", "fixtures", "supervise.js");

interface StatusLine {
  readonly state: string;
  readonly pid: number | null;
  readonly message: string;
}

/** A separate "Node-RED": test/fixtures/supervise.ts, a Supervisor in a process of its own. */
interface SupervisorProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly lines: StatusLine[];
  readonly exited: Promise<unknown>;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

describe("supervision: the lease and bounded stops", function () {
  this.timeout(60_000);
  // Everything a test started: SIGKILLed afterwards whatever happened (a SIGSTOPped daemon
  // would not heed a SIGTERM). Registered before useTempDir so it runs first.
  const pids = new Set<number>();
  const groups = new Set<number>();
  const supervisors: Supervisor[] = [];
  let daemonProcess: DaemonProcess | undefined;
  afterEach(async function () {
    this.timeout(30_000);
    for (const supervisor of supervisors.splice(0)) await supervisor.stop(false);
    await stopDaemonProcess(daemonProcess);
    daemonProcess = undefined;
    for (const pid of pids) kill(pid, "SIGKILL");
    for (const pgid of groups) kill(-pgid, "SIGKILL");
    pids.clear();
    groups.clear();
  });
  const tmp = useTempDir();

  const paths = () => ({ commands: tmp.file("commands"), results: tmp.file("results"), lease: `${tmp.file("commands")}.supervisor`, log: `${tmp.file("commands")}.log` });
  const files = () => daemonFiles(paths().commands, paths().results);

  function spawnSupervisor(grace: number): SupervisorProcess {
    const { commands, results } = paths();
    const child = spawn(process.execPath, [SUPERVISE, commands, results, String(grace)], { stdio: ["ignore", "pipe", "inherit"] });
    const lines: StatusLine[] = [];
    let rest = "";
    child.stdout.on("data", (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split("\n");
      rest = parts.pop() ?? "";
      for (const part of parts) lines.push(JSON.parse(part) as StatusLine);
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    assert.ok(child.pid !== undefined);
    pids.add(child.pid);
    return { child, pid: child.pid, lines, exited };
  }

  async function running(supervisor: SupervisorProcess): Promise<StatusLine & { pid: number }> {
    const line = await waitFor(`supervisor pid ${supervisor.pid} to report running`, () => supervisor.lines.find((l) => l.state === "running"));
    assert.ok(line.pid !== null);
    pids.add(line.pid);
    return line as StatusLine & { pid: number };
  }

  function inProcess(options: Partial<ConstructorParameters<typeof Supervisor>[0]> = {}): Supervisor {
    const { commands, results } = paths();
    const supervisor = new Supervisor({ commands, results, sleepTime: 0.1, pollMs: 200, supervisionGraceSeconds: 2, ...options });
    supervisors.push(supervisor);
    return supervisor;
  }

  async function startInProcess(supervisor: Supervisor): Promise<PublishedInfo> {
    const status = await supervisor.start();
    assert.equal(status.state, "running", status.message);
    const live = readLiveDaemon(files());
    assert.ok(live !== null);
    pids.add(live.pid);
    return live;
  }

  const servingLines = () => readOrEmpty(paths().log).match(/ serving /g)?.length ?? 0;

  describe("a daemon started by a supervisor", function () {
    it("stops after the grace once its supervisor process is SIGKILLed, and its log says why", async function () {
      const nodeRed = spawnSupervisor(2);
      const { pid } = await running(nodeRed);
      const daemon = readLiveDaemon(files());
      assert.equal(daemon?.pid, pid);
      assert.deepEqual(readLease(paths().lease), { pid: nodeRed.pid, startTime: processStartTime(nodeRed.pid) });
      assert.deepEqual(JSON.parse(readFileSync(paths().lease, "utf8")), { pid: nodeRed.pid, startTime: processStartTime(nodeRed.pid) });
      assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" "), / --supervised 2( |$)/);
      assert.equal((await submitCommand("exit 7", paths().commands, paths().results, 0.1)).code, 7);

      nodeRed.child.kill("SIGKILL");
      await nodeRed.exited;
      const killedAt = performance.now();
      await delay(800);
      assert.equal(readLiveDaemon(files())?.pid, pid, "within the grace the daemon still serves");
      await waitFor(`daemon pid ${pid} to exit`, () => isGone(pid, daemon.startTime ?? null), 8000);
      const after = performance.now() - killedAt;
      assert.ok(after >= 1000 && after < 5000, `it stopped ${Math.round(after)} ms after its supervisor died (grace 2 s, checked every 1 s)`);
      const log = readFileSync(paths().log, "utf8");
      assert.match(log, new RegExp(`not supervised: the supervisor pid ${nodeRed.pid} named in \\S+ is gone; stopping in [\\d.]+ s`));
      assert.match(log, new RegExp(`no supervisor for 2 s \\(the supervisor pid ${nodeRed.pid} named in \\S+ is gone\\): stopping`));
      assert.match(log, / stopped\n$/);
      assert.equal(readLiveDaemon(files()), null);
    });

    it("is adopted by a supervisor that comes back within the grace, which takes over the lease; left by that one too, it stops", async function () {
      const first = spawnSupervisor(2);
      const { pid } = await running(first);
      first.child.kill("SIGKILL");
      await first.exited;
      const second = spawnSupervisor(2);
      const adopted = await running(second);
      assert.equal(adopted.pid, pid);
      assert.match(adopted.message, new RegExp(`adopted the daemon already serving .* \\(pid ${pid}\\)`));
      await waitFor("the lease to name the second supervisor", () => readLease(paths().lease)?.pid === second.pid);

      await delay(3500);
      assert.equal(readLiveDaemon(files())?.pid, pid, "supervised again, the daemon outlives the grace");
      assert.equal((await submitCommand("exit 4", paths().commands, paths().results, 0.1)).code, 4);
      assert.equal(servingLines(), 1, "one daemon was ever started");

      // SIGTERM: the fixture stops supervising as a redeploy does; the lease stays as it was.
      second.child.kill("SIGTERM");
      await second.exited;
      assert.equal(readLease(paths().lease)?.pid, second.pid);
      await waitFor(`daemon pid ${pid} to exit`, () => readLiveDaemon(files()) === null, 8000);
    });
  });

  describe("a supervisor in this process", function () {
    it("stop(false) leaves daemon and lease, so the next supervisor adopts; stop(true) stops the daemon and removes the lease", async function () {
      const first = inProcess();
      const daemon = await startInProcess(first);
      assert.deepEqual(readLease(paths().lease), { pid: process.pid, startTime: processStartTime(process.pid) });
      await first.stop(false);
      assert.equal(readLease(paths().lease)?.pid, process.pid, "a redeploy leaves the lease");
      await delay(3000);
      assert.equal(readLiveDaemon(files())?.pid, daemon.pid, "the lease names this live process: no grace runs out");

      const second = inProcess();
      const status = await second.start();
      assert.equal(status.pid, daemon.pid);
      assert.match(status.message, /adopted/);
      await second.stop(true);
      assert.ok(isGone(daemon.pid, daemon.startTime));
      assert.equal(existsSync(paths().lease), false);
      assert.equal(servingLines(), 1);
    });

    it("writes a removed or garbled lease again within a poll, so its daemon keeps running", async function () {
      const supervisor = inProcess();
      const daemon = await startInProcess(supervisor);
      writeFileSync(paths().lease, "not json\n");
      await waitFor("the lease to be written again", () => readLease(paths().lease)?.pid === process.pid, 2000);
      rmSync(paths().lease);
      await waitFor("the lease to be written again", () => readLease(paths().lease)?.pid === process.pid, 2000);
      writeFileSync(paths().lease, JSON.stringify({ pid: 999_999_999, startTime: "1" }));
      await waitFor("the lease to be written again", () => readLease(paths().lease)?.pid === process.pid, 2000);
      await delay(2500);
      assert.equal(readLiveDaemon(files())?.pid, daemon.pid);
    });

    it("launches without --supervised when the grace is null", async function () {
      const daemon = await startInProcess(inProcess({ supervisionGraceSeconds: null }));
      assert.doesNotMatch(readFileSync(`/proc/${daemon.pid}/cmdline`, "utf8"), /--supervised/);
    });
  });

  describe("file-daemon --supervised", function () {
    it("stops after the grace when the lease is missing, or garbage; without the option it keeps running", async function () {
      const { commands, results, lease, log } = paths();
      const extra = ["--supervised", "1", "--log", log];
      let started = performance.now();
      daemonProcess = await startDaemonProcess(commands, results, 0.1, extra);
      assert.equal(await daemonProcess.exited, 0);
      let took = performance.now() - started;
      assert.ok(took < 4000, `no lease: stopped after ${Math.round(took)} ms`);
      assert.match(readFileSync(log, "utf8"), /not supervised: \S+\.supervisor does not exist; stopping in 1 s/);
      assert.match(readFileSync(log, "utf8"), /no supervisor for 1 s \(\S+\.supervisor does not exist\): stopping/);

      writeFileSync(lease, "{garbage");
      started = performance.now();
      daemonProcess = await startDaemonProcess(commands, results, 0.1, extra);
      assert.equal(await daemonProcess.exited, 0);
      took = performance.now() - started;
      assert.ok(took < 4000, `garbage lease: stopped after ${Math.round(took)} ms`);
      assert.match(readFileSync(log, "utf8"), /no supervisor for 1 s \(\S+\.supervisor is not a supervision lease\): stopping/);

      daemonProcess = await startDaemonProcess(commands, results, 0.1, ["--log", log]);
      await delay(2500);
      assert.equal(daemonProcess.child.exitCode, null, "a daemon started without --supervised ignores the lease");
    });

    it("lets a running command finish and writes its result before it stops", async function () {
      const { commands, results, lease, log } = paths();
      // The "supervisor": a process of our own, so the test can end it at the right moment.
      const holder = spawn("sleep", ["60"], { stdio: "ignore" });
      assert.ok(holder.pid !== undefined);
      pids.add(holder.pid);
      await waitFor("the holder's start time", () => processStartTime(holder.pid as number));
      writeFileSync(lease, `${JSON.stringify({ pid: holder.pid, startTime: processStartTime(holder.pid) })}\n`);
      daemonProcess = await startDaemonProcess(commands, results, 0.1, ["--supervised", "1", "--log", log]);
      await delay(1500);
      assert.equal(daemonProcess.child.exitCode, null, "a live holder keeps it running");

      const started = tmp.file("started");
      const pending = submitCommand(`touch '${started}'; sleep 2; exit 3`, commands, results, 0.1);
      await waitFor("the command to start", () => existsSync(started));
      holder.kill("SIGKILL");
      const result = await pending;
      assert.equal(result.code, 3, "the running command finished and its result was written");
      assert.equal(await daemonProcess.exited, 0);
      const text = readFileSync(log, "utf8");
      assert.match(text, new RegExp(`supervised by pid ${holder.pid}`));
      assert.match(text, /no supervisor for 1 s .*: stopping[\s\S]*waiting for 1 running command[\s\S]*stopped\n$/);
    });

    it("refuses a grace that is not a number of seconds above 0", function () {
      const { commands, results } = paths();
      for (const value of ["0", "soon", "-1"]) {
        const run = spawnSync(process.execPath, [CLI, results, commands, "0.1", `--supervised=${value}`], { encoding: "utf8", timeout: 10_000 });
        assert.notEqual(run.status, 0, `--supervised ${value}`);
        assert.match(run.stderr, /--supervised must be a number of seconds/);
      }
      assert.equal(existsSync(paths().lease), false);
    });
  });

  describe("stop(true) takes at most its 12 s, whatever the daemon does", function () {
    async function timedStop(supervisor: Supervisor): Promise<number> {
      const started = performance.now();
      await supervisor.stop(true);
      return performance.now() - started;
    }

    it("a daemon that ignores SIGTERM (stopped with SIGSTOP) is killed in time", async function () {
      const supervisor = inProcess();
      const daemon = await startInProcess(supervisor);
      kill(daemon.pid, "SIGSTOP");
      const took = await timedStop(supervisor);
      assert.ok(took < 12_500, `stop took ${Math.round(took)} ms`);
      assert.ok(took > 10_000, `SIGTERM was given its time first (${Math.round(took)} ms)`);
      assert.ok(isGone(daemon.pid, daemon.startTime));
      assert.equal(supervisor.status.state, "stopped");
    });

    it("a running command with a 30 s stop grace: the daemon is killed in time", async function () {
      const supervisor = inProcess({ stopGraceSeconds: 30 });
      const daemon = await startInProcess(supervisor);
      const pgid = tmp.file("pgid");
      const pending = submitCommand(`echo $$ > '${pgid}'; exec sleep 60`, paths().commands, paths().results, 0.1).catch((err: unknown) => err);
      await waitFor("the command to start", () => readOrEmpty(pgid).trim() !== "");
      groups.add(Number(readOrEmpty(pgid)));
      const took = await timedStop(supervisor);
      assert.ok(took < 12_500, `stop took ${Math.round(took)} ms`);
      assert.ok(isGone(daemon.pid, daemon.startTime));
      assert.equal(((await pending) as { code?: string }).code, "DAEMON_DIED");
    });

    it("the worst path: stopped while it replaces a daemon that ignores SIGTERM, it still takes one 12 s and starts no daemon", async function () {
      const first = inProcess({ channels: 1 });
      const old = await startInProcess(first);
      await first.stop(false);
      // Its info file is written a moment before its log line: stop it once both are there.
      await waitFor("the first daemon's log line", () => servingLines() === 1, 2000);
      kill(old.pid, "SIGSTOP");
      const second = inProcess({ channels: 2 });
      const seen: SupervisorStatus[] = [];
      second.on("state", (status) => seen.push(status));
      void second.start();
      await waitFor("the replacement to begin", () => seen.some((status) => /replacing it/.test(status.message)));
      await delay(200);
      const took = await timedStop(second);
      assert.ok(took < 12_500, `stop took ${Math.round(took)} ms`);
      assert.ok(isGone(old.pid, old.startTime));
      // Killed, it is a zombie until this process (its parent) reaps it, a moment later.
      await waitFor("no daemon serving", () => readLiveDaemon(files()) === null, 2000);
      await delay(500);
      assert.equal(servingLines(), 1, "no daemon was launched once the stop had begun");
    });
  });
});
