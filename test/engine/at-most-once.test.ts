import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { withChannelLocked, type LockAttempt } from "../../src/protocol/io/channel-state";
import { encodeCommandRecord, PLAIN_COMMAND } from "../../src/protocol/command-record";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { channelFiles, daemonFiles } from "../../src/protocol/paths";
import { decodeResults } from "../../src/protocol/result-record";
import { decodeTrace } from "../../src/protocol/taken-trace";
import { CLI, REPO, startDaemonProcess, stopDaemonProcess, type DaemonProcess } from "../helpers/daemon-process";
import { delay, readOrEmpty } from "../helpers/small";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

/** Error code of a rejected submit, or "ok:<code>" when it resolved. */
async function outcomeOf(submission: Promise<{ code: number | null }>): Promise<string> {
  try {
    return `ok:${(await submission).code}`;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** The locks were ours and `fn` did what it came for. */
function heldAndDone(attempt: LockAttempt<boolean>): boolean {
  return attempt.held && attempt.value;
}

/** Counts the lines a marker file holds: how many times a command really ran. */
function runs(file: string): number {
  return readOrEmpty(file).split("\n").filter((line) => line !== "").length;
}

/** Attaches strace to `pid` with `args` and resolves once it is attached. */
async function strace(pid: number, args: string[]): Promise<ChildProcess> {
  const child = spawn("strace", ["-p", String(pid), "-o", "/dev/null", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor(`strace to attach to ${pid} (${stderr})`, () => /attached/.test(stderr) || child.exitCode !== null);
  if (child.exitCode !== null) throw new Error(`strace failed: ${stderr}`);
  return child;
}

const RENAMES = "rename,renameat,renameat2";

/** A daemon process past its first wake (recovery done, the trace written), so that a tracer attached now sees only what follows. */
async function startSettledDaemon(commands: string, results: string, extra: string[]): Promise<DaemonProcess> {
  const daemon = await startDaemonProcess(commands, results, 0.2, extra);
  await waitFor("the daemon's first wake (its trace written)", () => existsSync(`${commands}.taken`));
  await delay(100);
  return daemon;
}

describe("at most once: a command runs once or not at all, and the submitter is told the truth", function () {
  this.timeout(60_000);
  const tmp = useTempDir();
  let daemonProcess: DaemonProcess | undefined;
  const others: DaemonProcess[] = [];
  let daemon: Daemon | undefined;
  const tracers: ChildProcess[] = [];

  afterEach(async () => {
    for (const tracer of tracers.splice(0)) tracer.kill("SIGKILL");
    for (const d of [daemonProcess, ...others.splice(0)]) {
      if (d !== undefined && d.child.exitCode === null && d.child.signalCode === null) d.child.kill("SIGCONT");
      await stopDaemonProcess(d);
    }
    daemonProcess = undefined;
    await daemon?.stop();
    daemon = undefined;
  });

  const commands = () => tmp.file("commands");
  const results = () => tmp.file("results");
  const submit = (command: string, options = {}) => submitCommand(command, commands(), results(), 0.2, options);

  it("#1 a submitter on another results file is refused before anything is written, and nothing runs", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    const marker = tmp.file("ran");
    const started = performance.now();
    await assert.rejects(submitCommand(`echo x >> '${marker}'`, commands(), tmp.file("results2"), 0.2), (err: Error & { code?: string }) => {
      assert.equal(err.code, "BAD_OPTION");
      assert.match(err.message, new RegExp(`writes its results to ${results()}, but this submitter reads ${tmp.file("results2")}`));
      return true;
    });
    assert.ok(performance.now() - started < 2000, "refused at once");
    await delay(500);
    assert.equal(runs(marker), 0);
    assert.equal(readFileSync(commands(), "utf8"), "", "nothing placed");
  });

  it("#2 a line 2 the daemon cannot honour (another version, a string timeout, an unknown key) is refused by id, never run as a seed command", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    const marker = tmp.file("ran");
    const cases = [
      { meta: { v: 2, id: "from-the-future", pid: process.pid }, reason: /protocol version 2/ },
      { meta: { v: 1, id: "string-timeout", pid: process.pid, timeout: "5000" }, reason: /"timeout" must be a whole number of ms/ },
      { meta: { v: 1, id: "unknown-key", pid: process.pid, chroot: "/tmp" }, reason: /key\(s\) this daemon does not know: chroot/ },
      { meta: { v: 1, id: "fraction", pid: process.pid, timeout: 1.5 }, reason: /"timeout"/ },
    ];
    const files = channelFiles(daemonFiles(commands(), results()), 0);
    for (const { meta, reason } of cases) {
      await waitFor("the channel to be free", () => heldAndDone(withChannelLocked(files, { stale: 10_000 }, (state) => {
        if (state.commands.kind !== "empty" || state.results.kind !== "empty") return false;
        state.writeCommands(`echo ${meta.id} >> '${marker}'\n${JSON.stringify(meta)}\n`);
        return true;
      })));
      const done = await waitFor(`the answer to ${meta.id}`, () => {
        const decoded = decodeResults(readOrEmptyBuffer(results()));
        return decoded.kind === "done" ? decoded : null;
      });
      assert.equal(done.id, meta.id, "answered under the sender's own id");
      assert.equal(done.status, "refused");
      assert.match(done.message ?? "", reason);
      writeFileSync(results(), "");
    }
    await delay(300);
    assert.equal(runs(marker), 0, "none of them ran");
  });

  it("#3/#4 a result taken by a seed-style reader before its submitter looked: INTERRUPTED (outcome unknown), run once, never placed again", async () => {
    // Settled: stopped inside its first wake, the daemon would hold the channel's locks.
    daemonProcess = await startSettledDaemon(commands(), results(), []);
    const marker = tmp.file("ran");
    // Deterministic order: the submitter never sees its command running, as when a short command
    // ends between two of its looks. It is placed while the daemon is stopped, then frozen itself.
    daemonProcess.child.kill("SIGSTOP");
    const submitter = spawn(process.execPath, [path.join(REPO, "dist", "test", "fixtures", "submit-one.js"), `echo once >> '${marker}'`, commands(), results(), "0.2"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    submitter.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    submitter.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const closed = new Promise((resolve) => submitter.once("close", resolve));
    await waitFor(`the command to be pending (submitter: ${out})`, () => /"id"/.test(readOrEmpty(commands())) || submitter.exitCode !== null);
    assert.equal(submitter.exitCode, null, out);
    submitter.kill("SIGSTOP");
    daemonProcess.child.kill("SIGCONT");
    // The seed-style reader: takes the number on line 1 and empties the file.
    await waitFor("the result, taken by a seed-style reader", () => {
      if (!/^0\n/.test(readOrEmpty(results()))) return false;
      writeFileSync(results(), "");
      return true;
    });
    submitter.kill("SIGCONT");
    await closed;
    assert.equal((JSON.parse(out) as { error?: string }).error, "INTERRUPTED", out);
    await delay(1000);
    assert.equal(runs(marker), 1, "it ran once, and was not placed again");
    assert.equal(readFileSync(commands(), "utf8"), "");
  });

  it("#3 overwritten before the daemon took it (provably never started): placed again, runs once", async () => {
    // Settled: the trace exists before the command is placed, so its anchor can prove what follows.
    daemonProcess = await startSettledDaemon(commands(), results(), []);
    const marker = tmp.file("ran");
    const other = tmp.file("other-ran");
    daemonProcess.child.kill("SIGSTOP");
    const submission = submit(`echo mine >> '${marker}'`);
    const files = channelFiles(daemonFiles(commands(), results()), 0);
    // A competing writer replaces the pending command with its own (seed-style) one.
    await waitFor("the command to be placed", () => heldAndDone(withChannelLocked(files, { stale: 10_000 }, (state) => {
      if (state.commands.kind !== "pending") return false;
      state.writeCommands(`echo other >> '${other}'\n`);
      return true;
    })));
    daemonProcess.child.kill("SIGCONT");
    // The seed-style command's result is collected by nobody: clear it as a seed reader would.
    const clearing = waitFor("the other command's result", () => {
      const decoded = decodeResults(readOrEmptyBuffer(results()));
      if (decoded.kind === "done" && decoded.id.startsWith("legacy-")) {
        writeFileSync(results(), "");
        return true;
      }
      return false;
    });
    assert.equal(await outcomeOf(submission), "ok:0");
    await clearing;
    assert.equal(runs(marker), 1);
    assert.equal(runs(other), 1);
  });

  it("#3 a second copy of a command already taken is never started (the taken trace), and the first result is collected", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    const marker = tmp.file("ran");
    const files = channelFiles(daemonFiles(commands(), results()), 0);
    const record = { command: `echo x >> '${marker}'`, id: "twice-placed", pid: process.pid, pidns: null, ...PLAIN_COMMAND, legacy: false };
    const placeCopy = () => waitFor("a free channel", () => heldAndDone(withChannelLocked(files, { stale: 10_000 }, (state) => {
      if (state.commands.kind !== "empty" || state.results.kind !== "empty") return false;
      state.writeCommands(encodeCommandRecord(record));
      return true;
    })));
    await placeCopy();
    const first = await waitFor("the first result", () => {
      const decoded = decodeResults(readOrEmptyBuffer(results()));
      return decoded.kind === "done" ? decoded : null;
    });
    assert.equal(first.status, "exited");
    writeFileSync(results(), "");
    await placeCopy();
    const second = await waitFor("the answer to the copy", () => {
      const decoded = decodeResults(readOrEmptyBuffer(results()));
      return decoded.kind === "done" ? decoded : null;
    });
    assert.equal(second.status, "interrupted");
    assert.match(second.message ?? "", /taken before/);
    assert.equal(runs(marker), 1);
    assert.ok(decodeTrace(readFileSync(files.taken))?.entries.some((entry) => entry.id === "twice-placed"));
  });

  it("#5 a shell that cannot be started (execa fails to load) gives SPAWN_FAILED, and the daemon keeps serving", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2, [], ["--import", path.join(REPO, "test", "fixtures", "no-execa.mjs")]);
    const marker = tmp.file("ran");
    // Longer than a warm shell takes (4096 bytes): started cold, through execa.
    const long = `echo x >> '${marker}' # ${"x".repeat(5000)}`;
    for (let i = 0; i < 2; i++) assert.equal(await outcomeOf(submit(long)), "SPAWN_FAILED");
    assert.equal(daemonProcess.child.exitCode, null, `the daemon is still running: ${daemonProcess.output()}`);
    assert.equal(runs(marker), 0);
    assert.equal(readLiveDaemon(daemonFiles(commands(), results()))?.pid, daemonProcess.child.pid);
    // A short command still runs, in a warm shell (spawned without execa).
    assert.equal(await outcomeOf(submit(`echo x >> '${marker}'`)), "ok:0");
    assert.equal(runs(marker), 1);
  });

  it("#5 a shell that does not exist gives SPAWN_FAILED, warm or cold, and the daemon keeps serving", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2, ["--shell", tmp.file("no-such-shell")]);
    // Each failed spare is replaced at once: a spare whose spawn error arrives after take() skipped it once crashed the daemon.
    for (const command of ["true", `true # ${"x".repeat(5000)}`, "true", "true", "true", "true", "true", "true"]) assert.equal(await outcomeOf(submit(command)), "SPAWN_FAILED");
    assert.equal(daemonProcess.child.exitCode, null, `the daemon is still running: ${daemonProcess.output()}`);
  });

  it("#6 the same file for commands and results is refused at once", async () => {
    const started = performance.now();
    await assert.rejects(submitCommand("true", commands(), commands(), 0.2), /must be different files/);
    assert.ok(performance.now() - started < 1000);
  });

  it("#7 the folder emptied while a command runs: the submitter hears INTERRUPTED, the late result is dropped (logged), the daemon serves again", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    const marker = tmp.file("ran");
    const submission = outcomeOf(submit(`sleep 1.5; echo x >> '${marker}'`));
    await waitFor("the command to run", () => decodeResults(readOrEmptyBuffer(results())).kind === "running");
    for (const name of readdirSync(tmp.path)) rmSync(tmp.file(name), { recursive: true, force: true });
    assert.equal(await submission, "INTERRUPTED");
    await waitFor("the result to be dropped", () => /result was dropped/.test(daemonProcess?.output() ?? ""), 10_000);
    await waitFor("the daemon to serve again", () => readLiveDaemon(daemonFiles(commands(), results()))?.pid === daemonProcess?.child.pid);
    assert.equal(await outcomeOf(submit("exit 5")), "ok:5");
    assert.equal(runs(marker), 1);
    assert.equal(readOrEmpty(results()), "");
  });

  it("#8a a daemon frozen longer than the stale time is still the one serving: a second daemon is refused", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2, ["--stale", "2000"]);
    daemonProcess.child.kill("SIGSTOP");
    await delay(3000);
    const second = await runCli([results(), commands(), "0.2", "--stale", "2000"]);
    daemonProcess.child.kill("SIGCONT");
    assert.equal(second.code, 4, second.stderr);
    assert.match(second.stderr, /already serves.*\[ALREADY_RUNNING\]/);
    const marker = tmp.file("ran");
    assert.equal(await outcomeOf(submit(`echo x >> '${marker}'`)), "ok:0");
    assert.equal(runs(marker), 1);
  });

  it("#8b a second daemon whose clock is an hour ahead does not take over a live one", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2, ["--stale", "2000"]);
    const second = await runCli([results(), commands(), "0.2", "--stale", "2000"], { FAKETIME: "+1h", FAKETIME_DONT_FAKE_MONOTONIC: "1", LD_PRELOAD: fakeTimeLibrary() });
    assert.equal(second.code, 4, second.stderr);
    assert.match(second.stderr, /\[ALREADY_RUNNING\]/);
    const marker = tmp.file("ran");
    const outcomes = await Promise.all(Array.from({ length: 4 }, (_, i) => outcomeOf(submit(`echo ${i} >> '${marker}'`))));
    assert.deepEqual(outcomes, ["ok:0", "ok:0", "ok:0", "ok:0"]);
    assert.equal(runs(marker), 4);
  });

  it("#8/#9 a daemon frozen inside take loses its locks: the withdrawn (aborted) command never runs", async () => {
    daemonProcess = await startSettledDaemon(commands(), results(), ["--stale", "2000"]);
    const pid = daemonProcess.child.pid as number;
    // Freeze the daemon at its first write of the next take (the trace), holding both channel locks.
    tracers.push(await strace(pid, ["-e", `trace=${RENAMES}`, "-e", `inject=${RENAMES}:delay_enter=4000000:when=1`]));
    const marker = tmp.file("ran");
    const controller = new AbortController();
    const submission = outcomeOf(submit(`echo x >> '${marker}'`, { signal: controller.signal }));
    await waitFor("the daemon to freeze inside take", () => existsSync(`${commands()}.lock`) && existsSync(`${results()}.lock`));
    controller.abort();
    assert.equal(await submission, "ABORTED");
    await delay(6000);
    assert.equal(runs(marker), 0, "the command reported as withdrawn did not run");
    assert.match(daemonProcess.output(), /lost the lock/);
    assert.equal(await outcomeOf(submit("exit 6")), "ok:6", "the daemon serves again");
  });

  for (const [name, argv] of [
    ["the CLI (file-daemon submit)", (c: string, r: string, command: string): [string, ...string[]] => [process.execPath, CLI, "submit", "-c", c, "-r", r, "-s", "0.2", "--", command]],
    ["the Python client", (c: string, r: string, command: string): [string, ...string[]] => ["python3", path.join(REPO, "python", "file_daemon.py"), c, r, "0.2", "--", command]],
  ] as const) {
    it(`#9 Ctrl-C to ${name} while the daemon is frozen inside take: withdrawn, and it never runs`, async () => {
      daemonProcess = await startSettledDaemon(commands(), results(), ["--stale", "2000"]);
      tracers.push(await strace(daemonProcess.child.pid as number, ["-e", `trace=${RENAMES}`, "-e", `inject=${RENAMES}:delay_enter=4000000:when=1`]));
      const marker = tmp.file("ran");
      const [program, ...args] = argv(commands(), results(), `echo x >> '${marker}'`);
      const submitter = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      submitter.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => submitter.once("close", (code) => resolve(code)));
      await waitFor("the daemon to freeze inside take", () => existsSync(`${commands()}.lock`) && existsSync(`${results()}.lock`));
      submitter.kill("SIGINT");
      const code = await exited;
      assert.ok(code === 125 || code === 130, `exit ${code}: ${stderr}`);
      await delay(6000);
      assert.equal(runs(marker), 0, `reported as withdrawn, and it did not run (${stderr.trim()})`);
      assert.equal(await outcomeOf(submit("exit 6")), "ok:6", "the daemon serves again");
    });
  }

  for (const [syscalls, when, where] of [
    [RENAMES, 2, "after the trace entry, before the running record"],
    [RENAMES, 3, "after the running record, before the commands file is emptied"],
    ["rmdir", 1, "after the commands file is emptied, before the locks are released"],
  ] as const) {
    it(`#10/#11 a daemon killed inside take (${where}) and restarted at once: the submitter is told, nothing runs, no channel stays stuck`, async () => {
      daemonProcess = await startSettledDaemon(commands(), results(), ["--stale", "2000"]);
      const pid = daemonProcess.child.pid as number;
      tracers.push(await strace(pid, ["-e", `trace=${syscalls}`, "-e", `inject=${syscalls}:error=EIO:signal=SIGKILL:when=${when}`]));
      const marker = tmp.file("ran");
      const submission = outcomeOf(submit(`echo x >> '${marker}'`, { daemonWait: 10 }));
      await daemonProcess.exited;
      assert.ok(existsSync(`${commands()}.lock`), "killed holding the channel locks");
      daemonProcess = await startDaemonProcess(commands(), results(), 0.2, ["--stale", "2000"]);
      const outcome = await submission;
      assert.ok(["INTERRUPTED", "DAEMON_DIED"].includes(outcome), `${outcome}; the restarted daemon said: ${daemonProcess.output()}`);
      await delay(1500);
      assert.ok(runs(marker) <= (syscalls === "rmdir" ? 1 : 0), "it never ran again after the report (killed after the take, it may have started)");
      assert.equal(await outcomeOf(submit("exit 7")), "ok:7");
      assert.equal(readOrEmpty(commands()), "");
      assert.equal(readOrEmpty(results()), "");
    });
  }

  it("#12 a damaged COMMANDS.daemon is repaired, and a dead daemon's lock with a future mtime does not block a start", async () => {
    const files = daemonFiles(commands(), results());
    mkdirSync(files.daemonLock, { mode: 0o700 });
    writeFileSync(files.info, JSON.stringify({ v: 1, commands: files.commands, results: files.results, pid: 999_999, startTime: "1", channels: 1, sleepTime: 0.2, stale: 10_000 }));
    const future = new Date(Date.now() + 3600_000);
    utimesSync(files.daemonLock, future, future);
    daemon = await Daemon.start({ commands: commands(), results: results(), sleepTime: 0.2 });
    assert.equal(readLiveDaemon(files)?.pid, process.pid);
    writeFileSync(files.info, "garbage\n");
    await waitFor("the daemon to publish itself again", () => readLiveDaemon(files)?.pid === process.pid, 5000);
    assert.equal(await outcomeOf(submit("exit 2")), "ok:2");
  });

  it("#13 a directory made unreadable for 2 s is waited out: the daemon keeps running and serves afterwards", async () => {
    chownSync(tmp.path, 65534, 65534);
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2, ["--user", "nobody", "--stale", "2000"]);
    chmodSync(tmp.path, 0o000);
    await delay(2500);
    chmodSync(tmp.path, 0o700);
    await delay(1500);
    assert.equal(daemonProcess.child.exitCode, null, `still running: ${daemonProcess.output()}`);
    assert.doesNotMatch(daemonProcess.output(), /took|another file-daemon|disappeared/, "permission trouble is not a lost lock");
    assert.equal(await outcomeOf(submit("exit 8")), "ok:8");
  });

  it("#15 temp files left by killed writers are removed at start", async () => {
    const dead = spawn("true");
    await new Promise((resolve) => dead.once("close", resolve));
    const temp = `${commands()}.${dead.pid}.0123abcd.tmp`;
    writeFileSync(temp, "half a record");
    const old = new Date(Date.now() - 120_000);
    utimesSync(temp, old, old);
    const live = `${commands()}.${process.pid}.0123abcd.tmp`;
    writeFileSync(live, "a live writer's");
    utimesSync(live, old, old);
    daemon = await Daemon.start({ commands: commands(), results: results(), sleepTime: 0.2 });
    await waitFor("the dead writer's temp file to go", () => !existsSync(temp), 5000);
    assert.ok(existsSync(live), "a live writer's temp file is kept");
  });

  it("a submit made while the daemon is still starting waits for it (5 s by default)", async () => {
    const submission = outcomeOf(submit("exit 3"));
    await delay(1000);
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    assert.equal(await submission, "ok:3");
  });

  it("a submitter that may not read the daemon's private directory is told PERMISSION, not 'no daemon'", async () => {
    daemonProcess = await startDaemonProcess(commands(), results(), 0.2);
    const child = spawn(process.execPath, [path.join(REPO, "dist", "test", "fixtures", "submit-one.js"), "true", commands(), results(), "0.2", "0"], { uid: 65534, gid: 65534, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await new Promise((resolve) => child.once("close", resolve));
    assert.equal((JSON.parse(out) as { error?: string }).error, "PERMISSION", out);
  });
});

function readOrEmptyBuffer(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch {
    return Buffer.alloc(0);
  }
}

function fakeTimeLibrary(): string {
  const candidates = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"];
  const found = candidates.find((file) => existsSync(file));
  if (found === undefined) throw new Error("libfaketime is not installed (apt-get install faketime; scripts/ensure-test-deps.sh does it)");
  return found;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stderr });
    });
  });
}
