// Faults the engine tests do not cover yet: a submitter killed while it waits, the files'
// directory deleted, made read-only or on a full disk, a daemon that dies at every start, and
// a second daemon started from the command line. Nothing may be lost, nothing run twice, and
// no submitter may be left hanging.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs, { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CommandFailedError, submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { Supervisor, type SupervisorStatus } from "../../src/supervisor/supervisor";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { delay, IS_ROOT, NOBODY, readOrEmpty, runCli, spawnCli, startDaemon, stopDaemon, submitInProcess, useTempDir, waitFor, type CliProcess } from "./support";

function memoryLog(): { lines: string[]; info(message: string): void; error(message: string): void } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info: ${m}`), error: (m) => lines.push(`error: ${m}`) };
}

function lines(file: string): string[] {
  return readOrEmpty(file).split("\n").filter((line) => line !== "");
}

describe("hardening: faults", function () {
  this.timeout(30_000);
  let daemon: Daemon | undefined;
  let daemonProcess: CliProcess | undefined;
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await stopDaemon(daemonProcess);
    daemonProcess = undefined;
    for (const step of cleanups.splice(0).reverse()) await step();
  });
  const tmp = useTempDir();

  it("a submitter SIGKILLed while it waits: its command runs once, the daemon clears the result, the channel frees up", async () => {
    const log = memoryLog();
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemon = await Daemon.start({ commands, results, sleepTime: 0.2, log });
    const ran = tmp.file("ran");
    const victim = submitInProcess(`echo run >> '${ran}'; sleep 0.5`, commands, results, 0.2);
    await waitFor("the command to start", () => readOrEmpty(ran) !== "");
    victim.child.kill("SIGKILL");
    assert.deepEqual(await victim.outcome, { error: "exited SIGKILL" });
    // The command ends, its result is written, and the daemon sees that its submitter is gone.
    await waitFor("the daemon to clear the dead submitter's result", () => log.lines.some((line) => line.includes("cleared a result nobody collected")), 5000);
    assert.equal(readFileSync(results, "utf8"), "", "the channel is free");
    const started = performance.now();
    assert.equal((await submitCommand("exit 4", commands, results, 0.2)).code, 4);
    assert.ok(performance.now() - started < 1000, "the next command did not wait for a timeout");
    assert.deepEqual(lines(ran), ["run"], "the command ran exactly once");
  });

  it("the directory deleted while a command runs: clear errors, the daemon keeps running and serves again once it is back", async () => {
    const dir = tmp.file("files");
    mkdirSync(dir, { mode: 0o700 });
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const log = tmp.file("daemon.log");
    const ran = tmp.file("ran");
    daemonProcess = await startDaemon(commands, results, 0.2, ["--log", log]);
    const running = submitCommand(`echo start >> '${ran}'; sleep 0.6; echo end >> '${ran}'`, commands, results, 0.2).catch((err: unknown) => err as CommandFailedError);
    await waitFor("the command to start", () => readOrEmpty(ran) !== "");

    // Like rm -rf while the daemon works: a lock or temporary file may appear meanwhile, retry.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 10 });
    const lost = await running;
    assert.equal(lost.code, "NO_DIRECTORY", String(lost));
    assert.match(lost.message, /the directory does not exist; create it or fix the path/);
    await assert.rejects(submitCommand("true", commands, results, 0.2), (err: Error & { code?: string }) => {
      assert.equal(err.code, "NO_DIRECTORY");
      assert.match(err.message, new RegExp(`cannot use directory ${dir}: the directory does not exist`));
      return true;
    });
    await waitFor("the daemon to say why it stopped serving", () => readOrEmpty(log).includes("disappeared"));
    assert.match(readOrEmpty(log), /the directory was removed or emptied\. Not taking commands until it is back/);
    await delay(700);
    assert.equal(daemonProcess.child.exitCode, null, "the daemon is still running");

    mkdirSync(dir, { mode: 0o700 });
    const back = await waitFor("the daemon to serve the new directory", () => readLiveDaemon(daemonFiles(commands, results)), 5000);
    assert.equal(back.pid, daemonProcess.pid, "the same daemon, not a new one");
    assert.equal((await submitCommand("exit 7", commands, results, 0.2)).code, 7);
    await waitFor("the interrupted command's result to be dropped", () => readOrEmpty(log).includes("its result was dropped"));
    assert.deepEqual(lines(ran), ["start", "end"], "the command that was running ran once, to its end");
    assert.match(readOrEmpty(log), /back: serving .* again/);
  });

  it("the directory made read-only: the submitter gets PERMISSION, the daemon keeps the result and writes it once it can", async function () {
    // Root ignores file modes, so the daemon drops to nobody (--user) and the submitters run as
    // nobody too; without root the test itself is unprivileged.
    if (!IS_ROOT) this.skip();
    const dir = tmp.file("files");
    const marks = tmp.file("marks");
    for (const d of [dir, marks]) {
      mkdirSync(d, { mode: 0o700 });
      fs.chownSync(d, NOBODY, NOBODY);
    }
    chmodSync(tmp.path, 0o755);
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const log = path.join(marks, "daemon.log");
    const ran = path.join(marks, "ran");
    // Two channels: the second submitter finds one free and tries to place its command there.
    daemonProcess = await startDaemon(commands, results, 0.2, ["--user", "nobody", "--log", log, "--channels", "2"]);
    const waiting = submitInProcess(`echo start >> '${ran}'; sleep 0.8; echo end >> '${ran}'`, commands, results, 0.2, { uid: NOBODY });
    await waitFor("the command to start", () => readOrEmpty(ran) !== "");

    chmodSync(dir, 0o500);
    const refused = await submitInProcess("true", commands, results, 0.2, { uid: NOBODY }).outcome;
    assert.equal(refused.error, "PERMISSION", JSON.stringify(refused));
    assert.match(refused.message ?? "", /permission denied \(EACCES\); make the directory writable by this user/);
    await waitFor("the daemon to report that it cannot write the result", () => /channel \d: cannot lock .*permission denied.*queued commands are kept/.test(readOrEmpty(log)), 5000);
    assert.equal(daemonProcess.child.exitCode, null, "the daemon keeps running");

    chmodSync(dir, 0o700);
    const outcome = await waiting.outcome;
    assert.deepEqual(outcome, { code: 0, status: "exited" }, "the waiting submitter got its result once the directory was writable again");
    assert.match(readOrEmpty(log), /channel \d: working again/);
    assert.deepEqual(await submitInProcess("exit 3", commands, results, 0.2, { uid: NOBODY }).outcome, { code: 3, status: "exited" });
    assert.deepEqual(lines(ran), ["start", "end"], "ran exactly once");
  });

  it("a full disk: placing fails with a clear IO error, the running command's result waits in memory and is written once there is room", async function () {
    const dir = tmp.file("small");
    mkdirSync(dir, { mode: 0o700 });
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const ran = tmp.file("ran");
    // A real full disk: a 64 KiB tmpfs (root only, and only where mounting is allowed).
    // Elsewhere every write into the directory fails with ENOSPC while `full` is set.
    let mounted = false;
    if (IS_ROOT) {
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir], { stdio: "ignore" });
        mounted = true;
        cleanups.push(() => execFileSync("umount", ["-l", dir], { stdio: "ignore" }));
      } catch {
        mounted = false;
      }
    }
    let full = false;
    const filler = path.join(dir, "filler");
    const fill = (): void => {
      if (!mounted) {
        full = true;
        return;
      }
      const chunk = Buffer.alloc(4096, 1);
      const fd = fs.openSync(filler, "w");
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
      } finally {
        fs.closeSync(fd);
      }
    };
    const makeRoom = (): void => {
      full = false;
      rmSync(filler, { force: true });
    };
    if (!mounted) {
      const original = fs.writeFileSync;
      fs.writeFileSync = (file: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView, options?: fs.WriteFileOptions) => {
        if (full && typeof file === "string" && file.startsWith(`${dir}/`)) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: "ENOSPC" });
        original(file, data, options);
      };
      cleanups.push(() => (fs.writeFileSync = original));
    }
    const log = memoryLog();
    daemon = await Daemon.start({ commands, results, sleepTime: 0.1, channels: 2, log });
    const running = submitCommand(`echo start >> '${ran}'; sleep 0.5; echo end >> '${ran}'`, commands, results, 0.1);
    await waitFor("the command to start", () => readOrEmpty(ran) !== "");

    fill();
    await assert.rejects(submitCommand(`echo must-not-run >> '${ran}'`, commands, results, 0.1), (err: Error & { code?: string }) => {
      assert.equal(err.code, "IO");
      assert.match(err.message, /cannot write .*commands(\.1)?: the disk is full \(ENOSPC\); free some space/);
      return true;
    });
    await waitFor("the daemon to report that it cannot write the result", () => log.lines.some((line) => /channel \d: cannot write .*results(\.1)?: the disk is full \(ENOSPC\).*queued commands are kept/.test(line)), 5000);
    await delay(300);
    makeRoom();
    const result = await running;
    assert.equal(result.code, 0, "the result was kept and reached its submitter");
    assert.ok(log.lines.some((line) => /channel \d: working again/.test(line)), log.lines.join("\n"));
    assert.equal((await submitCommand("exit 5", commands, results, 0.1)).code, 5);
    assert.deepEqual(lines(ran), ["start", "end"], "ran exactly once; the refused command never ran");
    if (this.test) this.test.title += mounted ? " [real 64 KiB tmpfs]" : " [ENOSPC injected: mounting a tmpfs is not allowed here]";
  });

  it("a daemon that dies at every start: the supervisor backs off (100, 200, 400, 800 ms), gives up after 5 starts and says why; no fork storm", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    writeFileSync(commands, "");
    chmodSync(commands, 0o666);
    const supervisor = new Supervisor({ commands, results, sleepTime: 0.2 });
    cleanups.push(() => supervisor.stop(true));
    const states: SupervisorStatus[] = [];
    supervisor.on("state", (status) => states.push(status));
    const started = performance.now();
    await supervisor.start();
    const failed = await waitFor("the supervisor to give up", () => states.find((status) => status.state === "failed"), 15_000);
    const tookMs = performance.now() - started;
    await delay(1500);
    // Every start writes its refusal, with a timestamp, to the log: that counts the starts.
    const starts = lines(supervisor.logFile).filter((line) => line.includes("[UNSAFE_FILES]"));
    assert.equal(starts.length, 5, starts.join("\n"));
    const times = starts.map((line) => Date.parse(line.split(" ")[0] as string));
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    [100, 200, 400, 800].forEach((backoff, i) => assert.ok((gaps[i] as number) >= backoff, `restart ${i + 1} waited ${gaps[i]} ms, at least ${backoff}`));
    assert.ok(tookMs < 10_000, `gave up after ${Math.round(tookMs)} ms`);
    assert.match(failed.message, /gave up on the daemon: it died 5 times in a row within 10 s of starting/);
    assert.match(failed.message, /writable by every user \(mode 0666\); run: chmod o-w/);
    assert.equal(states.filter((status) => status.state === "restarting" && /restarting in/.test(status.message)).length, 4);
    assert.equal(readLiveDaemon(daemonFiles(commands, results)), null);
  });

  it("a managed daemon's directory Node-RED's user cannot write: PERMISSION naming the user and the chown, no daemon started, and it starts once the directory is chowned", async function () {
    if (!IS_ROOT) this.skip();
    // Root may write anywhere: the supervisor runs as nobody, in a directory root owns (0755).
    chmodSync(tmp.path, 0o755);
    const dir = tmp.file("root-owned");
    mkdirSync(dir, { mode: 0o755 });
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const supervise = path.join(__dirname, "..", "fixtures", "supervise.js");
    const child = spawn(process.execPath, [supervise, commands, results, "5"], { uid: NOBODY, gid: NOBODY, stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    cleanups.push(() => {
      child.kill("SIGKILL");
      const live = readLiveDaemon(daemonFiles(commands, results));
      if (live !== null) process.kill(live.pid, "SIGKILL");
    });
    const statusLines = () => output.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as SupervisorStatus);
    const failed = await waitFor("the supervisor to report the problem", () => statusLines().find((status) => status.state === "failed"), 10_000);
    assert.equal(failed.problem?.code, "PERMISSION");
    assert.equal(failed.problem.message, `cannot write the daemon's log ${commands}.log: permission denied (EACCES); the directory must be writable by the user Node-RED runs as (nobody, uid ${NOBODY}): run sudo chown nobody ${dir} && sudo chmod 700 ${dir}`);
    assert.equal(statusLines().filter((status) => status.state === "restarting").length, 0, "no daemon was started, so none crashed");

    fs.chownSync(dir, NOBODY, NOBODY);
    chmodSync(dir, 0o700);
    const running = await waitFor("the daemon to start once the directory is nobody's", () => statusLines().find((status) => status.state === "running"), 10_000);
    assert.equal(running.problem, null);
    assert.equal((await submitInProcess("exit 2", commands, results, 0.1, { uid: NOBODY }).outcome).code, 2);
  });

  it("a second daemon from the command line: exit code 4, says who serves the files (stderr and its --log), the first keeps serving", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemonProcess = await startDaemon(commands, results, 0.2);
    const expected = new RegExp(`file-daemon pid ${daemonProcess.pid} already serves ${commands}; stop it first, or use other files \\[ALREADY_RUNNING\\]`);

    const log = tmp.file("second.log");
    const second = await runCli([results, commands, "0.2", "--log", log]);
    assert.equal(second.code, 4);
    assert.match(second.stderr, new RegExp(`^file-daemon: ${expected.source}\\n$`));
    assert.match(readOrEmpty(log), new RegExp(`^\\S+ file-daemon\\[\\d+\\] error: ${expected.source}\\n$`));

    const detached = await runCli([results, commands, "0.2", "--detach"]);
    assert.equal(detached.code, 4);
    assert.match(detached.stderr, expected);

    assert.equal(readLiveDaemon(daemonFiles(commands, results))?.pid, daemonProcess.pid);
    assert.equal((await submitCommand("exit 2", commands, results, 0.2)).code, 2);
    const output = spawnCli(["status", "-c", commands, "-r", results]);
    assert.equal((await output.exited).code, 0);
    assert.match(output.output(), new RegExp(`running: pid ${daemonProcess.pid}`));
    assert.equal(existsSync(`${commands}.kill`), false);
  });
});
