// python/file_daemon.py against a real daemon: what submit_command returns and raises.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  bytesOf,
  delay,
  fakeDaemon,
  PYTHON,
  PYTHON_DIR,
  readOrEmpty,
  runOne,
  runPython,
  SLEEP,
  startPython,
  startTimeOf,
  usePythonSuite,
  waitFor,
  type PyOutcome,
} from "./helpers";

const execFileAsync = promisify(execFile);

function resultOf(outcome: PyOutcome): NonNullable<PyOutcome["result"]> {
  assert.ok(outcome.result, `a result: ${JSON.stringify(outcome)}`);
  return outcome.result;
}

describe("python client: results from a real daemon", function () {
  this.timeout(30_000);
  const { tmp, files, start } = usePythonSuite();

  it("returns exit codes and signals, with a seed-style return_code", async () => {
    await start();
    const { commands, results } = files();
    const outcomes = await runPython(commands, results, [
      { command: "true" },
      { command: "exit 3" },
      { command: "exit 255" },
      { command: "kill -TERM $$" },
      { command: "kill -KILL $$" },
      { command: "no-such-command-here" },
    ]);
    const summary = outcomes.map((o) => [o.ok, o.result?.status, o.result?.code, o.result?.signal, o.result?.return_code]);
    assert.deepEqual(summary, [
      [true, "exited", 0, null, 0],
      [true, "exited", 3, null, 3],
      [true, "exited", 255, null, 255],
      [true, "signaled", null, "SIGTERM", 143],
      [true, "signaled", null, "SIGKILL", 137],
      [true, "exited", 127, null, 127],
    ]);
    const ids = new Set(outcomes.map((o) => o.result?.id));
    assert.equal(ids.size, outcomes.length, "every command has its own id");
    assert.equal(readOrEmpty(commands), "", "the commands file is free afterwards");
    assert.equal(readOrEmpty(results), "", "every result was collected");
  });

  it("raises TIMEOUT with the result when the command outlives its timeout", async () => {
    await start();
    const { commands, results } = files();
    const outcome = await runOne(commands, results, { command: "sleep 20", kwargs: { timeout: 0.3 } });
    assert.equal(outcome.ok, false);
    assert.equal(outcome.code, "TIMEOUT", outcome.message);
    assert.match(outcome.message ?? "", /timed out after 0\.3 s.*timeout=/);
    const result = resultOf(outcome);
    assert.deepEqual([result.status, result.code, result.signal, result.return_code], ["timeout", null, "SIGTERM", 143]);
    assert.ok(outcome.elapsed < 5, `took ${outcome.elapsed} s`);
    const fast = await runOne(commands, results, { command: "exit 0", kwargs: { timeout: 5 } });
    assert.equal(fast.result?.code, 0, "a command within its timeout is not affected");
  });

  it("captures stdout and stderr byte for byte, including bytes that are not UTF-8", async () => {
    await start();
    const { commands, results } = files();
    const [both, none, big] = await runPython(commands, results, [
      { command: String.raw`printf 'out\377\000\376\nline2'; printf 'err\200\n' >&2; exit 2`, kwargs: { capture: true } },
      { command: "echo not captured; echo nor this >&2" },
      { command: "head -c 70000 /dev/zero; printf x >&2", kwargs: { capture: true } },
    ]);
    const result = resultOf(both as PyOutcome);
    assert.equal(result.code, 2);
    assert.deepEqual(bytesOf(result.stdout), Buffer.from([0x6f, 0x75, 0x74, 0xff, 0x00, 0xfe, 0x0a, 0x6c, 0x69, 0x6e, 0x65, 0x32]));
    assert.deepEqual(bytesOf(result.stderr), Buffer.from([0x65, 0x72, 0x72, 0x80, 0x0a]));
    assert.deepEqual([result.stdout_truncated, result.stderr_truncated], [false, false]);
    assert.deepEqual([none?.result?.stdout, none?.result?.stderr], [null, null], "no capture: stdout and stderr are None");
    const cut = resultOf(big as PyOutcome);
    assert.equal(bytesOf(cut.stdout)?.length, 65_536);
    assert.deepEqual([cut.stdout_truncated, cut.stderr_truncated, bytesOf(cut.stderr)?.toString()], [true, false, "x"]);
  });

  it("rejects bad commands and options before writing anything", async () => {
    await start();
    const { commands, results } = files();
    const before = { listing: readdirSync(tmp.path).sort(), commands: statSync(commands), results: statSync(results) };
    const bad: [string, string, string?][] = [
      ["123", "BAD_COMMAND"],
      ["None", "BAD_COMMAND"],
      ["b'ls'", "BAD_COMMAND"],
      ["''", "BAD_COMMAND"],
      ["' \\t '", "BAD_COMMAND"],
      ["'\\v\\f '", "BAD_COMMAND"],
      ["'echo a\\necho b'", "BAD_COMMAND"],
      ["'echo a\\r'", "BAD_COMMAND"],
      ["'echo \\x00'", "BAD_COMMAND"],
      ["'echo \\ud800'", "BAD_COMMAND"],
      ["'x' * 65537", "BAD_COMMAND"],
      ["': ' + '\\u00e9' * 32768", "BAD_COMMAND"],
      ["'true'", "BAD_OPTION", "{'sleep_time': 0}"],
      ["'true'", "BAD_OPTION", "{'sleep_time': -1}"],
      ["'true'", "BAD_OPTION", "{'sleep_time': float('nan')}"],
      ["'true'", "BAD_OPTION", "{'sleep_time': '0.5'}"],
      ["'true'", "BAD_OPTION", "{'sleep_time': 3601}"],
      ["'true'", "BAD_OPTION", "{'timeout': -1}"],
      ["'true'", "BAD_OPTION", "{'timeout': True}"],
      ["'true'", "BAD_OPTION", "{'capture': 'yes'}"],
      ["'true'", "BAD_OPTION", "{'daemon_wait': float('inf')}"],
      ["'true'", "BAD_OPTION", "{'stale': 0}"],
      ["'true'", "BAD_OPTION", "{'commands': ''}"],
      ["'true'", "BAD_OPTION", `{'results': ${JSON.stringify(commands)}}`],
    ];
    const outcomes = await runPython(
      commands,
      results,
      bad.map(([expr, , kwargsExpr]) => ({ expr, ...(kwargsExpr === undefined ? {} : { kwargsExpr }) })),
    );
    assert.deepEqual(
      outcomes.map((o, i) => [bad[i]?.[0], bad[i]?.[2], o.code, o.result]),
      bad.map(([expr, code, kwargsExpr]) => [expr, kwargsExpr, code, null]),
    );
    for (const outcome of outcomes) assert.ok((outcome.message ?? "").length > 20, `says what is wrong: ${outcome.message}`);
    assert.deepEqual(readdirSync(tmp.path).sort(), before.listing, "no file was created");
    assert.equal(statSync(commands).mtimeMs, before.commands.mtimeMs, "the commands file was not written");
    assert.equal(statSync(commands).ino, before.commands.ino, "the commands file was not replaced");
    assert.equal(statSync(results).ino, before.results.ino, "the results file was not replaced");
  });

  it("accepts a command of exactly 65536 UTF-8 bytes", async () => {
    await start();
    const { commands, results } = files();
    // ': ' is 2 bytes, 'é' is 2 bytes: 2 + 2 × 32767 = 65536.
    const outcome = await runOne(commands, results, { expr: "': ' + '\\u00e9' * 32767 + ''", kwargs: { capture: true } });
    assert.equal(outcome.ok, true, outcome.message);
    assert.equal(outcome.result?.code, 0);
  });

  it("fails with DAEMON_NOT_RUNNING when no daemon serves the files, leaving nothing behind", async () => {
    const { commands, results } = files();
    const [now, waited] = await runPython(commands, results, [{ command: "touch never", kwargs: { daemon_wait: 0 } }, { command: "touch never", kwargs: { daemon_wait: 0.4 } }]);
    assert.equal(now?.code, "DAEMON_NOT_RUNNING", now?.message);
    assert.match(now.message ?? "", /did not run.*file-daemon /);
    assert.ok(now.elapsed < 2, `fails at once (${now.elapsed} s)`);
    assert.equal(waited?.code, "DAEMON_NOT_RUNNING");
    assert.ok(waited.elapsed >= 0.4, `waits daemon_wait first (${waited.elapsed} s)`);
    assert.match(waited.message ?? "", /waited 0\.4 s/, "says how long it waited");
    assert.deepEqual(readdirSync(tmp.path), [], "nothing was written: no commands file, no lock, no temp file");
    const missing = await runOne(tmp.file("no/such/dir/commands"), tmp.file("no/such/dir/results"), { command: "true" });
    assert.equal(missing.code, "NO_DIRECTORY", missing.message);
  });

  it("judges liveness as the protocol says: pid, start time and the daemon lock", async () => {
    const { commands, results } = files();
    const cases: [string, () => void][] = [
      ["a start time that does not match (pid reused)", () => fakeDaemon(commands, results, { startTime: "1" })],
      ["a pid that does not exist", () => fakeDaemon(commands, results, { pid: 2 ** 22 + 17, startTime: null })],
      ["no daemon lock directory", () => {
        fakeDaemon(commands, results);
        rmdirSync(`${commands}.daemon.lock`);
      }],
      ["an info file that is not JSON", () => writeFileSync(`${commands}.daemon`, "4242\n")],
    ];
    for (const [what, arrange] of cases) {
      arrange();
      const outcome = await runOne(commands, results, { command: "true", kwargs: { daemon_wait: 0 } });
      assert.equal(outcome.code, "DAEMON_NOT_RUNNING", `${what}: ${outcome.message}`);
      assert.equal(readOrEmpty(commands), "", `${what}: nothing placed`);
    }
    // A daemon that is alive by every test: the command is placed (and withdrawn when it vanishes).
    fakeDaemon(commands, results, { startTime: startTimeOf(process.pid) });
    const placed = startPython(commands, results, [{ command: "true" }]);
    await waitFor("the command to be placed for a live daemon", () => readOrEmpty(commands).startsWith("true\n"));
    placed.child.kill("SIGINT");
    const { outcomes } = await placed.done;
    assert.equal(outcomes[0]?.interrupted, true);
  });

  it("waits up to daemon_wait for a daemon that starts later", async () => {
    const { commands, results } = files();
    const python = startPython(commands, results, [{ command: "exit 6", kwargs: { daemon_wait: 20 } }]);
    await delay(300);
    await start();
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 6, outcomes[0]?.message);
  });

  it("reports SPAWN_FAILED when the daemon cannot start its shell, and KILLED when it stops mid-command", async () => {
    const spawnFailing = start({ shell: "/nonexistent/shell" });
    await spawnFailing;
    const { commands, results } = files();
    const failed = await runOne(commands, results, { command: "true" });
    assert.equal(failed.code, "SPAWN_FAILED", failed.message);
    assert.deepEqual([failed.result?.status, failed.result?.return_code], ["failed", -1]);
    await (await spawnFailing).stop();

    const stopping = await start({ stopGraceMs: 100 });
    const python = startPython(commands, results, [{ command: "sleep 20" }]);
    await waitFor("the command to run", () => readOrEmpty(results).includes('"running"'));
    await stopping.stop();
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.code, "KILLED", outcomes[0]?.message);
    assert.equal(outcomes[0].result?.status, "killed");
  });

  it("uses every channel the daemon publishes, at the same time", async () => {
    await start({ channels: 3 });
    const { commands, results } = files();
    // Each command waits (bounded) until all three have started: it only exits 0 if they overlap.
    const barrier = tmp.file("started");
    mkdirSync(barrier);
    const command = (n: number) =>
      `touch '${barrier}/${n}'; i=0; while [ "$(ls '${barrier}' | wc -l)" -lt 3 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ "$(ls '${barrier}' | wc -l)" -ge 3 ]`;
    const runs = [0, 1, 2].map((n) => startPython(commands, results, [{ command: command(n) }]));
    const outcomes = (await Promise.all(runs.map((run) => run.done))).map(({ outcomes: [o] }) => o);
    assert.deepEqual(outcomes.map((o) => o?.result?.code), [0, 0, 0], JSON.stringify(outcomes));
    assert.deepEqual(outcomes.map((o) => o?.result?.channel).sort(), [0, 1, 2]);
    for (const suffix of ["", ".1", ".2"]) assert.equal(readOrEmpty(commands + suffix) + readOrEmpty(results + suffix), "");
  });

  it("coexists with a seed-style submitter that reads only line 1", async () => {
    await start();
    const { commands, results } = files();
    // The seed's helper: write line 1 under the commands lock, poll line 1 of results under
    // its lock until it is a number, then empty it. Line 2 is never looked at.
    const seed = String.raw`
import os, sys, time
commands, results, command = sys.argv[1:4]
def locked(path, action):
    while True:
        try:
            os.mkdir(path + ".lock", 0o700)
            break
        except FileExistsError:
            time.sleep(0.05)
    try:
        return action()
    finally:
        os.rmdir(path + ".lock")
def place():
    with open(commands, "w") as f:
        f.write(command + "\n")
locked(commands, place)
if len(sys.argv) > 4:
    open(sys.argv[4], "w").close()
    while os.path.exists(sys.argv[4]):
        time.sleep(0.02)
def collect():
    with open(results) as f:
        line = f.readline().strip()
    if line.lstrip("-").isdigit():
        open(results, "w").close()
        return int(line)
    return None
while True:
    code = locked(results, collect)
    if code is not None:
        print(code)
        break
    time.sleep(0.05)
`;
    const seedRun = (command: string, hold?: string) => execFileAsync(PYTHON, ["-c", seed, commands, results, command, ...(hold === undefined ? [] : [hold])]);
    assert.equal((await seedRun("exit 7")).stdout.trim(), "7");
    assert.equal((await seedRun("kill -TERM $$")).stdout.trim(), "143", "a signal reads as 128 + N on line 1");

    // A seed-style result waiting to be read: the Python client must not clobber it, and runs after it.
    const hold = tmp.file("hold");
    const seedLate = seedRun("exit 5", hold);
    await waitFor("the seed-style result to wait on line 1", () => existsSync(hold) && readOrEmpty(results).startsWith("5\n"));
    const python = startPython(commands, results, [{ command: "exit 9" }]);
    await delay(500);
    assert.equal(python.child.exitCode, null, "the Python client waits while the seed's result is uncollected");
    assert.ok(readOrEmpty(results).startsWith("5\n"), "the seed's result is intact");
    assert.equal(readOrEmpty(commands), "", "nothing was placed over it");
    rmSync(hold);
    assert.equal((await seedLate).stdout.trim(), "5");
    const { outcomes } = await python.done;
    assert.equal(outcomes[0]?.result?.code, 9, outcomes[0]?.message);
  });

  it("works as a command-line tool mirroring the seed helper", async () => {
    const daemon = await start();
    const { commands, results } = files();
    const script = path.join(PYTHON_DIR, "file_daemon.py");
    const run = (args: string[]) =>
      execFileAsync(PYTHON, [script, commands, results, String(SLEEP), ...args]).then(
        ({ stdout }) => ({ code: 0, stdout, stderr: "" }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
      );
    assert.deepEqual(await run(["--output", "--", "echo", "hello;", "exit", "4"]), { code: 4, stdout: "hello\n", stderr: "" });
    const timedOut = await run(["--timeout", "0.2", "--", "sleep 20"]);
    assert.equal(timedOut.code, 124, "a timeout exits 124, as timeout(1)");
    assert.match(timedOut.stderr, /timed out.*\[TIMEOUT\]/);
    await daemon.stop();
    const none = await run(["--wait", "0", "--", "true"]);
    assert.equal(none.code, 125);
    assert.match(none.stderr, /no file-daemon serves.*\[DAEMON_NOT_RUNNING\]/);
    assert.equal(readFileSync(commands, "utf8"), "");
  });
});
