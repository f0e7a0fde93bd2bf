// python/file_daemon.py and the decisions of issue 9 (at most once): what COMMANDS.daemon must
// say, how long to wait for a daemon, the taken trace (C.taken) that tells "overwritten before it
// started" from "taken, result lost", lock ownership, exclusive temp files, the CLI's exit status.
// Commands append a line to a marker file, so a test can count how many times one really ran.
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readlinkSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  deadPid,
  delay,
  FAKE_EPOCH,
  fakeDaemon,
  pendingMeta,
  PYTHON,
  PYTHON_DIR,
  readOrEmpty,
  replaceFile,
  resultsMeta,
  runOne,
  SLEEP,
  startPython,
  stopFakeDaemon,
  usePythonSuite,
  waitFor,
  withLocks,
} from "./helpers";

const execFileAsync = promisify(execFile);

/** How many lines of the marker file `log` are `marker`. */
function runs(log: string, marker = "ran"): number {
  return readOrEmpty(log)
    .split("\n")
    .filter((line) => line === marker).length;
}

function doneRecord(id: string, code: number, owner: { pid: number | null; pidns: string | null } = { pid: process.pid, pidns: null }): string {
  const meta = { v: 1, state: "done", id, ...owner, status: "exited", code, signal: null, message: null, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 1 };
  return `${code}\n${JSON.stringify(meta)}\n`;
}

describe("python client: at most once (issue 9)", function () {
  this.timeout(40_000);
  const { tmp, files, start } = usePythonSuite();
  const marked = () => {
    const log = tmp.file("ran.log");
    return { log, command: `echo ran >> '${log}'` };
  };

  // --- A: what COMMANDS.daemon says --------------------------------------------------------

  it("refuses a daemon that speaks another protocol version (INCOMPATIBLE), writing nothing", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results, { extra: { v: 2 } });
    const outcome = await runOne(commands, results, { command: marked().command, kwargs: { daemon_wait: 0 } });
    assert.equal(outcome.code, "INCOMPATIBLE", outcome.message);
    assert.match(outcome.message ?? "", /speaks protocol version 2; this client speaks version 1: install the same version/);
    assert.equal(existsSync(commands), false, "nothing placed");
  });

  it("refuses a daemon serving other results (BAD_OPTION naming both), but accepts the same file through a symlinked directory", async () => {
    await start();
    const { commands, results } = files();
    const other = tmp.file("other-results");
    const { log, command } = marked();
    const outcome = await runOne(commands, other, { command, kwargs: { daemon_wait: 0 } });
    assert.equal(outcome.code, "BAD_OPTION", outcome.message);
    assert.ok((outcome.message ?? "").includes(`writes its results to ${results}, but this submitter reads ${other}`), outcome.message);
    assert.equal(readOrEmpty(commands), "", "nothing placed");
    const link = `${tmp.path}-link`;
    symlinkSync(tmp.path, link);
    try {
      const same = await runOne(path.join(link, "commands"), path.join(link, "results"), { command });
      assert.equal(same.ok, true, same.message);
    } finally {
      spawnSync("rm", ["-f", link]);
    }
    assert.equal(runs(log), 1);
  });

  it("reads an info file without the served files as no daemon", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const info = JSON.parse(readOrEmpty(`${commands}.daemon`)) as Record<string, unknown>;
    delete info.results;
    writeFileSync(`${commands}.daemon`, `${JSON.stringify(info)}\n`);
    const outcome = await runOne(commands, results, { command: "true", kwargs: { daemon_wait: 0 } });
    assert.equal(outcome.code, "DAEMON_NOT_RUNNING", outcome.message);
  });

  it("uses the stale the daemon publishes: a 5 s old lock is stale under a 2 s daemon", async () => {
    await start({ stale: 2000 });
    const { commands, results } = files();
    mkdirSync(`${commands}.lock`);
    const when = Date.now() / 1000 - 5;
    utimesSync(`${commands}.lock`, when, when);
    const outcome = await runOne(commands, results, { command: "exit 4" });
    assert.equal(outcome.result?.code, 4, outcome.message);
    assert.ok(outcome.elapsed < 2.5, `taken over at once, not after the default 10 s (${outcome.elapsed} s)`);
  });

  it("reports PERMISSION, not 'no daemon', when it may not read the daemon's directory", async function () {
    if (process.getuid?.() !== 0) this.skip();
    const { commands, results } = files(); // the temp directory is 0700 root; run Python as nobody
    const script = `import sys; sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)}); import file_daemon as fd
try:
    fd.submit_command("true", ${JSON.stringify(commands)}, ${JSON.stringify(results)}, 0.05, daemon_wait=3)
except fd.FileDaemonError as err:
    print(err.code, err)`;
    const began = performance.now();
    const run = spawnSync(PYTHON, ["-c", script], { uid: 65534, gid: 65534, cwd: "/", encoding: "utf8" });
    assert.match(run.stdout, /^PERMISSION .*commands\.daemon: permission denied/, run.stderr);
    assert.ok(performance.now() - began < 2500, "at once, without waiting for a daemon");
  });

  // --- B: waiting for a daemon ---------------------------------------------------------------

  it("waits 5 s for a daemon by default and says so; a missing directory fails at once", async () => {
    const { commands, results } = files();
    const outcome = await runOne(commands, results, { command: "true" });
    assert.equal(outcome.code, "DAEMON_NOT_RUNNING", outcome.message);
    assert.ok(outcome.elapsed >= 4.9 && outcome.elapsed < 8, `waited about 5 s (${outcome.elapsed} s)`);
    assert.match(outcome.message ?? "", /waited 5 s/);
    const missing = await runOne(tmp.file("nope/commands"), tmp.file("nope/results"), { command: "true", kwargs: { daemon_wait: 20 } });
    assert.equal(missing.code, "NO_DIRECTORY", missing.message);
    assert.ok(missing.elapsed < 1, `at once (${missing.elapsed} s)`);
    const check = spawnSync(PYTHON, ["-c", `import sys, inspect; sys.path.insert(0, ${JSON.stringify(PYTHON_DIR)}); import file_daemon as fd; print(list(inspect.signature(fd.submit_command).parameters)[:4])`], { encoding: "utf8" });
    assert.equal(check.stdout.trim(), "['command', 'commands', 'results', 'sleep_time']", "the seed's signature");
  });

  // --- C: the taken trace, with a trace written by hand --------------------------------------

  it("fails with INTERRUPTED, never placing again, when its vanished id is in the taken trace", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const { log, command } = marked();
    const python = startPython(commands, results, [{ command }]);
    const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
    // What a daemon's take looks like if the result is then lost: trace written, commands emptied.
    await withLocks(commands, results, () => {
      replaceFile(`${commands}.taken`, `trace ${FAKE_EPOCH}\n1 ${pending.id}\n`);
      replaceFile(commands, "");
    });
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "INTERRUPTED", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /taken by the daemon but its result disappeared.*outcome is unknown; it is not run again/);
    assert.equal(readOrEmpty(commands), "", "not placed again");
    assert.equal(runs(log), 0);
  });

  it("fails with INTERRUPTED when the trace no longer shows its anchor (another epoch: replaced)", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    writeFileSync(`${commands}.taken`, `trace ${FAKE_EPOCH}\n6 a\n7 b\n`);
    const python = startPython(commands, results, [{ command: marked().command }]);
    await waitFor("the command to be pending", () => pendingMeta(commands));
    await withLocks(commands, results, () => {
      replaceFile(`${commands}.taken`, `trace 1111111111111111\n1 x\n`);
      replaceFile(commands, "");
    });
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "INTERRUPTED", outcomes[0]?.message);
    assert.match(outcomes[0].message ?? "", /cannot show whether it was taken/);
    assert.equal(readOrEmpty(commands), "", "not placed again");
  });

  it("places again, same id, when the trace still holds its anchor and not its id", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    writeFileSync(`${commands}.taken`, `trace ${FAKE_EPOCH}\n6 a\n7 b\n`);
    const python = startPython(commands, results, [{ command: marked().command }]);
    const first = await waitFor("the command to be pending", () => pendingMeta(commands));
    await withLocks(commands, results, () => {
      replaceFile(`${commands}.taken`, `trace ${FAKE_EPOCH}\n7 b\n8 someone-else\n`);
      replaceFile(commands, "");
    });
    const again = await waitFor("the command to be placed again", () => pendingMeta(commands));
    assert.equal(again.id, first.id);
    python.child.kill("SIGINT");
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.interrupted, true);
    assert.equal(readOrEmpty(commands), "", "withdrawn on Ctrl-C");
  });

  // --- C with a real daemon's trace ----------------------------------------------------------

  it("reports INTERRUPTED and runs once when a seed-style reader takes its result", async () => {
    const { commands, results } = files();
    const { log, command } = marked();
    // Pending under a fake daemon first, so that Python (sleep_time 1 s) is between looks when the
    // real daemon takes and runs it: it never sees it running.
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command, kwargs: { daemon_wait: 20 } }], 1);
    await waitFor("the command to be pending", () => pendingMeta(commands));
    await delay(1500);
    // A seed-style reader: under the results lock, empties any numeric line 1 it finds, every ms.
    const thief = spawn(PYTHON, ["-c", String.raw`
import os, sys, time
results = sys.argv[1]
while True:
    try:
        os.mkdir(results + ".lock", 0o700)
    except FileExistsError:
        time.sleep(0.001)
        continue
    try:
        with open(results) as f:
            line = f.readline().strip()
        if line.lstrip("-").isdigit():
            open(results, "w").close()
    except FileNotFoundError:
        pass
    finally:
        os.rmdir(results + ".lock")
    time.sleep(0.001)
`, results], { stdio: "ignore" });
    try {
      stopFakeDaemon(commands);
      await start();
      const { outcomes } = await python.done;
      assert.equal(outcomes[0]?.code, "INTERRUPTED", outcomes[0]?.message);
      assert.match(outcomes[0].message ?? "", /taken by the daemon but its result disappeared/);
      assert.equal(runs(log), 1, "ran exactly once");
    } finally {
      thief.kill("SIGKILL");
    }
  });

  it("places again and runs once when its command was overwritten before the daemon took it", async () => {
    const { commands, results } = files();
    const { log, command } = marked();
    const otherLog = tmp.file("other.log");
    // A first command, so that the trace has an entry to anchor to.
    const first = await start();
    assert.equal((await runOne(commands, results, { command: "true" })).ok, true);
    await first.stop();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command, kwargs: { daemon_wait: 20 } }]);
    await waitFor("the command to be pending", () => pendingMeta(commands));
    // Two lock holders: the other one writes its own command over ours. Its submitter is gone,
    // so its result may be cleared by whoever places next.
    const other = { v: 1, id: "someone-else-1", pid: await deadPid(), pidns: readlinkSync("/proc/self/ns/pid"), timeout: 0, capture: false };
    await withLocks(commands, results, () => replaceFile(commands, `echo other >> '${otherLog}'\n${JSON.stringify(other)}\n`));
    stopFakeDaemon(commands);
    await start();
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.ok, true, outcomes[0]?.message);
    assert.equal(runs(log), 1, "ours ran once");
    assert.equal(runs(otherLog, "other"), 1, "the other one ran once");
  });

  // --- E: collecting withdraws a duplicate --------------------------------------------------

  it("empties a pending duplicate of its own id when it collects its result", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const python = startPython(commands, results, [{ command: "true" }]);
    const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
    // The result is there and the same command is still pending (placed twice by two lock holders).
    await withLocks(commands, results, () => replaceFile(results, doneRecord(pending.id, 42)));
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 42, outcomes[0]?.message);
    assert.equal(readOrEmpty(results), "", "collected");
    assert.equal(readOrEmpty(commands), "", "the duplicate was withdrawn with it");
  });

  // --- F: lock ownership --------------------------------------------------------------------

  it("writes nothing and removes nothing once its lock was taken over (inode/mtime changed)", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results);
    const flag = tmp.file("taken-over");
    // Python whose first read of a done result under the locks coincides with a stale takeover of
    // the results lock by another party (rmdir + mkdir, another mtime).
    const script = String.raw`
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import file_daemon as fd
commands, results, flag = sys.argv[2:5]
real_read = fd._read
def read(path):
    content = real_read(path)
    lock = results + ".lock"
    if path == results and b'"done"' in content and os.path.isdir(lock) and not os.path.exists(flag):
        os.rmdir(lock)
        os.mkdir(lock, 0o700)
        when = time.time() - 1
        os.utime(lock, (when, when))
        open(flag, "w").close()
    return content
fd._read = read
try:
    print(json.dumps({"code": fd.submit_command("true", commands, results, 0.05).code}), flush=True)
except fd.FileDaemonError as err:
    print(json.dumps({"error": err.code, "message": str(err)}), flush=True)
`;
    const child = spawn(PYTHON, ["-c", script, PYTHON_DIR, commands, results, flag], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      const pending = await waitFor("the command to be pending", () => pendingMeta(commands));
      await withLocks(commands, results, () => {
        replaceFile(commands, "");
        replaceFile(results, doneRecord(pending.id, 42));
      });
      await waitFor("the takeover", () => existsSync(flag));
      await delay(500);
      assert.equal(resultsMeta(results)?.id, pending.id, "the result was not collected under a lost lock");
      assert.ok(existsSync(`${results}.lock`), "the other party's lock was not removed");
      assert.equal(child.exitCode, null, "still waiting");
      rmdirQuiet(`${results}.lock`);
      await exited;
      assert.deepEqual(JSON.parse(out) as unknown, { code: 42 });
      assert.equal(readOrEmpty(results), "");
    } finally {
      child.kill("SIGKILL");
    }
  });

  // --- H: the CLI's exit status ---------------------------------------------------------------

  it("CLI exits with the status, 128+N for a signal, 124 on timeout, 125 when file-daemon failed", async () => {
    await start();
    const { commands, results } = files();
    const script = path.join(PYTHON_DIR, "file_daemon.py");
    const status = (args: string[], files2: { commands: string; results: string } = { commands, results }) =>
      execFileAsync(PYTHON, [script, files2.commands, files2.results, String(SLEEP), ...args]).then(
        () => 0,
        (err: { code: number }) => err.code,
      );
    assert.equal(await status(["--", "exit 7"]), 7);
    assert.equal(await status(["--", "kill -TERM $$"]), 143);
    assert.equal(await status(["--", "kill -KILL $$"]), 137);
    assert.equal(await status(["--timeout", "0.2", "--", "sleep 20"]), 124);
    assert.equal(await status(["--", "true"], { commands, results: tmp.file("other-results") }), 125, "BAD_OPTION");
  });

  // --- I: temp files ----------------------------------------------------------------------------

  it("creates temp files exclusively (O_EXCL), named X.<pid>.<hex>.tmp, and never writes through one that exists", () => {
    const target = tmp.file("x");
    const script = String.raw`
import json, os, secrets, sys
sys.path.insert(0, sys.argv[1])
import file_daemon as fd
target = sys.argv[2]
opened = []
real_open = os.open
def spy(path, flags, *rest):
    if str(path).endswith(".tmp"):
        opened.append({"name": os.path.basename(path), "excl": bool(flags & os.O_EXCL), "creat": bool(flags & os.O_CREAT)})
    return real_open(path, flags, *rest)
os.open = spy
fd._write_atomic(target, b"one\n")
secrets.token_hex = lambda n=None: "abcd1234"
taken = f"{target}.{os.getpid()}.abcd1234.tmp"
with open(taken, "w") as f:
    f.write("someone else's\n")
try:
    fd._write_atomic(target, b"two\n")
    clash = None
except fd.FileDaemonError as err:
    clash = err.code
print(json.dumps({"pid": os.getpid(), "opened": opened, "clash": clash, "target": open(target).read(), "theirs": open(taken).read()}))
`;
    const run = spawnSync(PYTHON, ["-c", script, PYTHON_DIR, target], { encoding: "utf8" });
    const got = JSON.parse(run.stdout) as { pid: number; opened: { name: string; excl: boolean; creat: boolean }[]; clash: string | null; target: string; theirs: string };
    assert.match(got.opened[0]?.name ?? "", new RegExp(`^x\\.${got.pid}\\.[0-9a-f]+\\.tmp$`));
    assert.deepEqual(got.opened.map((o) => [o.excl, o.creat]), [[true, true], [true, true]]);
    assert.notEqual(got.clash, null, "an existing temp file is an error, not overwritten");
    assert.deepEqual([got.target, got.theirs], ["one\n", "someone else's\n"]);
    assert.deepEqual(readdirSync(tmp.path).sort(), [`x`, `x.${got.pid}.abcd1234.tmp`]);
  });
});

function rmdirQuiet(dir: string): void {
  spawnSync("rmdir", [dir]);
}
