// python/file_daemon.py when things go wrong: a daemon that dies, Ctrl-C, stale locks,
// commands that vanish, results nobody will collect.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, utimesSync } from "node:fs";
import { Daemon } from "../../src/index";
import {
  deadPid,
  delay,
  fakeDaemon,
  killPythons,
  groupExists,
  killGroup,
  pendingMeta,
  PYTHON,
  readOrEmpty,
  replaceFile,
  resultsMeta,
  runOne,
  SLEEP,
  startDaemonProcess,
  startPython,
  stopDaemonProcess,
  stopFakeDaemon,
  useTempDir,
  waitFor,
  withLocks,
  type DaemonProcess,
} from "./helpers";

describe("python client: failures and recovery", function () {
  this.timeout(30_000);
  let daemon: Daemon | undefined;
  let daemonProcess: DaemonProcess | undefined;
  const groups: number[] = [];
  afterEach(async () => {
    killPythons();
    await daemon?.stop();
    daemon = undefined;
    await stopDaemonProcess(daemonProcess);
    daemonProcess = undefined;
    for (const pgid of groups.splice(0)) killGroup(pgid);
  });
  const tmp = useTempDir();
  const files = () => ({ commands: tmp.file("commands"), results: tmp.file("results") });
  const start = async (options: { stale?: number } = {}) => {
    daemon = await Daemon.start({ ...files(), sleepTime: SLEEP, ...options });
  };
  /** A command that records its process group, then runs until killed. */
  const longCommand = () => `echo $$ > '${tmp.file("pgid")}'; echo ran >> '${tmp.file("ran")}'; sleep 30; echo late >> '${tmp.file("ran")}'`;
  const waitUntilRunning = async () => {
    const pgid = await waitFor("the command to start", () => Number(readOrEmpty(tmp.file("pgid")).trim()));
    groups.push(pgid);
    return pgid;
  };

  it("fails with DAEMON_DIED soon after the daemon is SIGKILLed mid-command, and frees the channel", async () => {
    const { commands, results } = files();
    daemonProcess = await startDaemonProcess(commands, results);
    const python = startPython(commands, results, [{ command: longCommand(), kwargs: { daemon_wait: 0 } }]);
    await waitUntilRunning();
    const killedAt = performance.now();
    daemonProcess.child.kill("SIGKILL");
    const { outcomes } = await python.done;
    const waited = performance.now() - killedAt;
    assert.equal(outcomes[0]?.code, "DAEMON_DIED", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /died while the command ran; its outcome is unknown/);
    assert.ok(waited < 3000, `learned within 3 s (took ${Math.round(waited)} ms)`);
    assert.equal(readOrEmpty(results), "", "the running record was removed");
    assert.equal(readOrEmpty(commands), "");
    assert.equal(readOrEmpty(tmp.file("ran")), "ran\n");
  });

  it("reports INTERRUPTED when a restarted daemon recovers the command, and never runs it again", async () => {
    const { commands, results } = files();
    daemonProcess = await startDaemonProcess(commands, results);
    const python = startPython(commands, results, [{ command: longCommand(), kwargs: { daemon_wait: 20 } }]);
    const pgid = await waitUntilRunning();
    daemonProcess.child.kill("SIGKILL");
    await daemonProcess.exited;
    killGroup(pgid);
    daemonProcess = await startDaemonProcess(commands, results);
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "INTERRUPTED", outcomes[0]?.message);
    assert.deepEqual([outcomes[0].result?.status, outcomes[0].result?.return_code], ["interrupted", -1]);
    assert.equal(readOrEmpty(results), "");
    assert.equal(readOrEmpty(tmp.file("ran")), "ran\n", "not run again");
  });

  it("withdraws a pending command when the daemon goes away", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "touch never", kwargs: { daemon_wait: 0.5 } }]);
    await waitFor("the command to be pending", () => pendingMeta(commands));
    stopFakeDaemon(commands);
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "DAEMON_NOT_RUNNING", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /withdrawn and did not run/);
    assert.equal(readOrEmpty(commands), "");
  });

  it("withdraws a pending command on Ctrl-C (KeyboardInterrupt), so it never runs", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: `touch '${tmp.file("never")}'` }]);
    await waitFor("the command to be pending", () => pendingMeta(commands));
    python.child.kill("SIGINT");
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.interrupted, true, JSON.stringify(outcomes));
    assert.equal(readOrEmpty(commands), "", "withdrawn");
    stopFakeDaemon(commands);
    await start();
    assert.equal((await runOne(commands, results, { command: "exit 2" })).result?.code, 2, "the channel works");
    assert.equal(existsSync(tmp.file("never")), false);
  });

  it("kills a running command on Ctrl-C through the kill file, and collects its result", async () => {
    await start();
    const { commands, results } = files();
    const python = startPython(commands, results, [{ command: longCommand() }]);
    const pgid = await waitUntilRunning();
    const interruptedAt = performance.now();
    python.child.kill("SIGINT");
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.interrupted, true, JSON.stringify(outcomes));
    assert.ok(performance.now() - interruptedAt < 5000, "the kill took less than 5 s");
    await waitFor("the command's process group to be gone", () => !groupExists(pgid));
    assert.equal(readOrEmpty(results), "", "the killed result was collected");
    assert.equal(existsSync(`${commands}.kill`), false, "the daemon consumed the kill request");
    assert.equal(readOrEmpty(tmp.file("ran")), "ran\n");
  });

  it("takes over stale locks: mtime long past, or in the future after a clock jump", async () => {
    await start();
    const { commands, results } = files();
    for (const offset of [-60, 60]) {
      for (const file of [commands, results]) {
        mkdirSync(`${file}.lock`);
        const when = Date.now() / 1000 + offset;
        utimesSync(`${file}.lock`, when, when);
      }
      const outcome = await runOne(commands, results, { command: "exit 5" });
      assert.equal(outcome.result?.code, 5, `mtime ${offset} s away: ${outcome.message}`);
      assert.ok(outcome.elapsed < 3, `taken over at once (${outcome.elapsed} s)`);
      assert.equal(existsSync(`${commands}.lock`) || existsSync(`${results}.lock`), false, "released afterwards");
    }
  });

  it("takes over a lock left by a dead process once it is stale, and not before", async () => {
    await start({ stale: 2000 });
    const { commands, results } = files();
    const holder = spawnSync(PYTHON, ["-c", `import os; os.mkdir(${JSON.stringify(`${commands}.lock`)}, 0o700)`]);
    assert.equal(holder.status, 0, String(holder.stderr));
    const outcome = await runOne(commands, results, { command: "exit 4", kwargs: { stale: 2 } });
    assert.equal(outcome.result?.code, 4, outcome.message);
    assert.ok(outcome.elapsed > 1, `the fresh lock was respected until stale (${outcome.elapsed} s)`);
    assert.ok(outcome.elapsed < 6, `then taken over (${outcome.elapsed} s)`);
  });

  it("waits while a live holder keeps a lock", async () => {
    await start();
    const { commands, results } = files();
    mkdirSync(`${commands}.lock`);
    const python = startPython(commands, results, [{ command: "exit 8" }]);
    await delay(500);
    assert.equal(python.child.exitCode, null, "still waiting for the lock");
    assert.equal(readOrEmpty(commands), "", "nothing written without the lock");
    rmdirSync(`${commands}.lock`);
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 8, outcomes[0]?.message);
  });

  it("places a command again when it vanishes before it starts, and runs it once", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const ran = tmp.file("ran");
    const python = startPython(commands, results, [{ command: `echo once >> '${ran}'; exit 3`, kwargs: { daemon_wait: 20 } }]);
    const first = await waitFor("the command to be pending", () => pendingMeta(commands));
    // A third party overwrites the commands file (two lock holders after a stale takeover).
    await withLocks(commands, results, () => replaceFile(commands, ""));
    const again = await waitFor("the command to be placed again", () => pendingMeta(commands));
    assert.equal(again.id, first.id, "the same command, the same id");
    stopFakeDaemon(commands);
    await start();
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 3, outcomes[0]?.message);
    assert.equal(readFileSync(ran, "utf8"), "once\n");
  });

  it("gives up with LOST after the command vanished four times; it never ran", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "touch never" }]);
    for (let vanished = 0; vanished < 4; vanished++) {
      await waitFor(`placement ${vanished + 1}`, () => pendingMeta(commands));
      await withLocks(commands, results, () => replaceFile(commands, ""));
    }
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "LOST", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /vanished .* 4 times before it started.*did not run/);
    assert.equal(readOrEmpty(commands), "");
  });

  it("clears a result whose submitter is gone, but never one whose submitter lives", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const pidns = readlinkSync("/proc/self/ns/pid");
    const done = (pid: number) =>
      `0\n${JSON.stringify({ v: 1, state: "done", id: `old-${pid}`, pid, pidns, status: "exited", code: 0, signal: null, message: null, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 1 })}\n`;

    replaceFile(results, done(process.pid));
    const waiting = startPython(commands, results, [{ command: "true" }]);
    await delay(500);
    assert.equal(readOrEmpty(commands), "", "not placed over a result its live submitter will collect");
    assert.equal(resultsMeta(results)?.id, `old-${process.pid}`);
    waiting.child.kill("SIGINT");
    await waiting.done;

    replaceFile(results, done(await deadPid()));
    const placing = startPython(commands, results, [{ command: "true" }]);
    await waitFor("the command to be placed", () => pendingMeta(commands));
    assert.equal(readOrEmpty(results), "", "the dead submitter's result was cleared");
    placing.child.kill("SIGINT");
    await placing.done;
  });

  it("collects only its own id: another command's result in the way is left alone", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "true" }]);
    const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
    const done = (id: string, code: number) =>
      `${code}\n${JSON.stringify({ v: 1, state: "done", id, pid: process.pid, pidns: null, status: "exited", code, signal: null, message: null, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 1 })}\n`;
    // Two lock holders can leave another command's result beside our pending one.
    await withLocks(commands, results, () => replaceFile(results, done("someone-else", 0)));
    await delay(500);
    assert.equal(python.child.exitCode, null, "still waiting for its own result");
    assert.equal(resultsMeta(results)?.id, "someone-else", "the other result was not taken");
    await withLocks(commands, results, () => {
      replaceFile(commands, "");
      replaceFile(results, done(pending.id, 42));
    });
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 42, outcomes[0]?.message);
  });

  it("fails with INTERRUPTED when its running command's record disappears (outcome unknown)", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "true" }]);
    const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
    const owner = { id: pending.id, pid: pending.pid, pidns: pending.pidns };
    await withLocks(commands, results, () => {
      replaceFile(results, `\n${JSON.stringify({ v: 1, state: "running", ...owner, daemon: process.pid, run: "by-hand" })}\n`);
      replaceFile(commands, "");
    });
    // Python looks every 50 ms; a second is ample for it to see the command running.
    await delay(1000);
    await withLocks(commands, results, () => replaceFile(results, ""));
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "INTERRUPTED", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /taken by the daemon but its result disappeared.*outcome is unknown/);
    assert.equal(readOrEmpty(commands), "", "not placed again: it had started");
  });

  it("turns a refused result into BAD_COMMAND carrying the daemon's message", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "true" }]);
    const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
    assert.deepEqual([pending.pid, pending.timeout, pending.capture], [python.child.pid, 0, false], "line 2 names the submitter");
    assert.match(pending.pidns ?? "", /^pid:\[\d+\]$/);
    // What the daemon does when it refuses (PROTOCOL.md §5 "Take"), done here by hand.
    await withLocks(commands, results, () => {
      const record = { v: 1, state: "done", id: pending.id, pid: pending.pid, pidns: pending.pidns, status: "refused", code: null, signal: null, message: "not today", stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 };
      replaceFile(results, `-1\n${JSON.stringify(record)}\n`);
      replaceFile(commands, "");
    });
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "BAD_COMMAND", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /not today/);
    assert.deepEqual([outcomes[0].result?.status, outcomes[0].result?.return_code], ["refused", -1]);
    assert.equal(readOrEmpty(results), "");
  });
});
