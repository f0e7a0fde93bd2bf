// python/file_daemon.py with line 2's cwd, env and stdin, and following a command's output
// (on_line) through R.stream, against a real daemon (PROTOCOL.md §3-§5).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { bytesOf, fakeDaemon, killPythons, pendingMeta, PYTHON, PYTHON_DIR, readOrEmpty, replaceFile, SLEEP, usePythonSuite, waitFor } from "./helpers";

/** One line handed to on_line: [seq, "o" | "e", text, partial, missed]. */
type Line = [number, "o" | "e", string, boolean, number];

interface StreamOutcome {
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
  /** The type of an exception that is not a FileDaemonError (one raised by on_line). */
  readonly raised?: string;
  readonly result: { status: string; code: number | null; stdout: string | null; streamed: number | null; missed: number | null } | null;
  readonly lines: Line[];
  readonly elapsed: number;
}

interface StreamCall {
  readonly command: string;
  /** Keyword arguments as a Python dict expression (bytes, for instance). */
  readonly kwargs?: string;
  /** Follow the output (on_line); with `sleepAt`, sleep that many seconds in on_line at line `seq`. */
  readonly follow?: boolean;
  readonly sleepAt?: { seq: number; seconds: number };
  /** on_line raises ValueError at this line. */
  readonly raiseAt?: number;
}

const RUNNER = String.raw`
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
import file_daemon as fd

spec = json.loads(sys.argv[2])
call = spec["call"]
lines = []

def on_line(line):
    assert isinstance(line, fd.OutputLine)
    lines.append([line.seq, {"stdout": "o", "stderr": "e"}[line.stream], line.text, line.partial, line.missed])
    sleep_at = call.get("sleepAt")
    if sleep_at is not None and line.seq == sleep_at["seq"]:
        time.sleep(sleep_at["seconds"])
    if call.get("raiseAt") == line.seq:
        raise ValueError("stop here")

def result(r):
    if r is None:
        return None
    out = {name: getattr(r, name) for name in ("status", "code", "streamed", "missed")}
    out["stdout"] = None if r.stdout is None else base64.b64encode(r.stdout).decode()
    return out

kwargs = dict(commands=spec["commands"], results=spec["results"], sleep_time=spec["sleep"])
kwargs.update(eval(call.get("kwargs", "{}")))
if call.get("follow"):
    kwargs["on_line"] = on_line
out = {}
began = time.monotonic()
try:
    out.update(ok=True, result=result(fd.submit_command(call["command"], **kwargs)))
except fd.FileDaemonError as err:
    out.update(ok=False, code=err.code, message=str(err), result=result(err.result))
except Exception as err:
    out.update(ok=False, raised=type(err).__name__, result=None)
out["elapsed"] = time.monotonic() - began
out["lines"] = lines
print(json.dumps(out), flush=True)
`;

function startStreamPython(commands: string, results: string, call: StreamCall): { done: Promise<StreamOutcome>; kill: () => void } {
  const spec = JSON.stringify({ commands, results, sleep: SLEEP, call });
  const child = spawn(PYTHON, ["-c", RUNNER, PYTHON_DIR, spec], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<StreamOutcome>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode, signal) => {
      if (exitCode === 0) resolve(JSON.parse(stdout) as StreamOutcome);
      else reject(new Error(`python exited with ${exitCode ?? signal}: ${stderr}`));
    });
  });
  return {
    done,
    kill: () => {
      child.kill("SIGKILL");
    },
  };
}

function runStream(commands: string, results: string, call: StreamCall): Promise<StreamOutcome> {
  return startStreamPython(commands, results, call).done;
}

/** How many lines `file` has (each run of a marked command appends one). */
function runsIn(file: string): number {
  return readOrEmpty(file).split("\n").filter((line) => line !== "").length;
}

describe("python client: cwd, env, stdin and following output", function () {
  this.timeout(60_000);
  const { tmp, files, start } = usePythonSuite();
  afterEach(() => killPythons());

  it("runs the command in cwd, with env set over the daemon's and stdin written to it", async () => {
    await start();
    const { commands, results } = files();
    const dir = tmp.file("work dir");
    mkdirSync(dir);
    const marker = tmp.file("marker");
    const outcome = await runStream(commands, results, {
      command: `echo x >> '${marker}'; pwd; printf '%s|%s|%s\\n' "$FOO" "$BAR" "$PATH"; cat`,
      kwargs: `{"capture": True, "cwd": ${JSON.stringify(dir)}, "env": {"FOO": "foo bar", "BAR": "\\u00e9=1"}, "stdin": b"in\\xff\\x00put\\n"}`,
    });
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    const expected = Buffer.concat([Buffer.from(`${dir}\nfoo bar|é=1|${process.env.PATH ?? ""}\n`), Buffer.from([0x69, 0x6e, 0xff, 0x00, 0x70, 0x75, 0x74, 0x0a])]);
    assert.deepEqual(bytesOf(outcome.result?.stdout), expected);
    assert.deepEqual([outcome.result?.streamed, outcome.result?.missed], [null, null], "not followed: no streamed, no missed");
    const text = await runStream(commands, results, { command: "cat", kwargs: `{"capture": True, "stdin": "caf\\u00e9"}` });
    assert.equal(bytesOf(text.result?.stdout)?.toString(), "café", "a str is sent as UTF-8");
    assert.equal(runsIn(marker), 1, "the command ran once");
  });

  it("writes the new line 2 keys only when used", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results, { extra: { features: ["cwd", "env", "stdin", "stream"] } });
    // Killed while placing, a Python would leave its locks behind (stale after 10 s): each waits until it let go.
    const plain = startStreamPython(commands, results, { command: "true" });
    await waitFor("the plain command to be pending, its locks released", () => pendingMeta(commands) !== null && !existsSync(`${commands}.lock`) && !existsSync(`${results}.lock`));
    assert.deepEqual(Object.keys(pendingMeta(commands) ?? {}).sort(), ["capture", "id", "pid", "pidns", "timeout", "v"]);
    plain.kill();
    await plain.done.catch(() => undefined);
    replaceFile(commands, "");
    const full = startStreamPython(commands, results, { command: "true", follow: true, kwargs: `{"cwd": "/", "env": {"A": "1"}, "stdin": b"\\x00\\xff"}` });
    await waitFor("the command with options to be pending, its locks released", () => pendingMeta(commands) !== null && !existsSync(`${commands}.lock`) && !existsSync(`${results}.lock`));
    const meta = pendingMeta(commands) as unknown as Record<string, unknown>;
    assert.deepEqual([meta.cwd, meta.env, meta.stdin, meta.stream], ["/", { A: "1" }, "AP8=", true]);
    full.kill();
    await full.done.catch(() => undefined);
  });

  it("is INCOMPATIBLE with a daemon that does not list the features it uses, before writing anything", async () => {
    const { commands, results } = files();
    fakeDaemon(commands, results, { extra: { features: ["cwd"] } });
    const outcome = await runStream(commands, results, { command: "true", follow: true, kwargs: `{"cwd": "/", "env": {}}` });
    assert.equal(outcome.code, "INCOMPATIBLE", JSON.stringify(outcome));
    assert.match(outcome.message ?? "", /cannot set a command's environment or stream a command's output: upgrade/);
    assert.equal(existsSync(commands), false, "nothing was written");
  });

  it("reports a missing cwd as BAD_COMMAND naming the directory (the daemon refuses it; it never runs)", async () => {
    await start();
    const { commands, results } = files();
    const marker = tmp.file("marker");
    const missing = tmp.file("no such dir");
    const outcome = await runStream(commands, results, { command: `echo x >> '${marker}'`, kwargs: `{"cwd": ${JSON.stringify(missing)}}` });
    assert.equal(outcome.code, "BAD_COMMAND", JSON.stringify(outcome));
    assert.ok(outcome.message?.includes(missing), outcome.message);
    assert.equal(outcome.result?.status, "refused");
    assert.equal(existsSync(marker), false, "it did not run");
    assert.equal(readOrEmpty(results), "", "the refusal was collected");
  });

  it("refuses bad cwd, env and stdin before anything is written", async () => {
    await start();
    const { commands, results } = files();
    const before = { listing: readdirSync(tmp.path).sort(), commands: statSync(commands), results: statSync(results) };
    const bad: [string, RegExp][] = [
      [`{"cwd": "relative/dir"}`, /^cwd must be an absolute path/],
      [`{"cwd": "/a\\x00b"}`, /^cwd must not contain a NUL/],
      [`{"cwd": "/" + "a" * 4096}`, /^cwd is 4097 bytes long; the limit is 4096/],
      [`{"cwd": 5}`, /^cwd must be a str/],
      [`{"env": {"1A": "x"}}`, /^env has the name '1A'; a variable name is a letter/],
      [`{"env": {"A-B": "x"}}`, /^env has the name 'A-B'/],
      [`{"env": {"": "x"}}`, /^env has the name ''/],
      [`{"env": {"A": 1}}`, /^env A must be a str/],
      [`{"env": {"A": "x\\x00"}}`, /^env A contains a NUL/],
      [`{"env": {"A": "\\ud800"}}`, /^env A is not valid Unicode/],
      [`{"env": {"A": "x" * 65535}}`, /^env is 65538 bytes long; the limit is 65536/],
      [`{"env": [("A", "x")]}`, /^env must be a dict/],
      [`{"stdin": b"x" * (1024 * 1024 + 1)}`, /^stdin is 1048577 bytes long; the limit is 1048576 \(1 MiB\)/],
      [`{"stdin": "\\u00e9" * (512 * 1024 + 1)}`, /^stdin is 1048578 bytes long/],
      [`{"stdin": 5}`, /^stdin must be bytes or a str/],
    ];
    for (const [kwargs, message] of bad) {
      const outcome = await runStream(commands, results, { command: "true", kwargs });
      assert.equal(outcome.code, "BAD_COMMAND", `${kwargs}: ${JSON.stringify(outcome)}`);
      assert.match(outcome.message ?? "", message, kwargs);
    }
    const notCallable = await runStream(commands, results, { command: "true", kwargs: `{"on_line": 5}` });
    assert.equal(notCallable.code, "BAD_OPTION", JSON.stringify(notCallable));
    assert.deepEqual(readdirSync(tmp.path).sort(), before.listing, "no file was created");
    for (const file of ["commands", "results"] as const) {
      const now = statSync(file === "commands" ? commands : results);
      assert.deepEqual([now.ino, now.mtimeMs, now.size], [before[file].ino, before[file].mtimeMs, before[file].size], `the ${file} file is untouched`);
    }
  });

  it("follows seq 100000 and a stderr line: every line once, in order, none missed", async () => {
    await start();
    const { commands, results } = files();
    const marker = tmp.file("marker");
    const outcome = await runStream(commands, results, { command: `echo x >> '${marker}'; seq 100000; echo done >&2`, follow: true });
    assert.equal(outcome.ok, true, outcome.message);
    assert.deepEqual([outcome.result?.streamed, outcome.result?.missed], [100_001, 0]);
    assert.equal(outcome.lines.length, 100_001);
    outcome.lines.forEach((line, i) => {
      const expected: Line = i < 100_000 ? [i + 1, "o", String(i + 1), false, 0] : [100_001, "e", "done", false, 0];
      if (line.join() !== expected.join()) assert.deepEqual(line, expected, `line ${i + 1}`);
    });
    assert.equal(runsIn(marker), 1, "the command ran once");
    assert.deepEqual([existsSync(`${results}.stream`), existsSync(`${results}.stream.read`)], [false, false], "the follower removed the stream files");
  });

  it("hands a 20 000-byte line over in parts flagged partial, cut between characters", async () => {
    await start();
    const { commands, results } = files();
    // 10 000 × "é" (2 bytes each), then a short line.
    const outcome = await runStream(commands, results, { command: `printf '\\303\\251%.0s' $(seq 10000); echo; echo next`, follow: true });
    assert.equal(outcome.ok, true, outcome.message);
    const parts = outcome.lines.filter((line) => line[2] !== "next");
    assert.deepEqual(parts.map((line) => line[3]), [true, true, false]);
    assert.ok(parts.every((line) => Buffer.byteLength(line[2]) <= 8192));
    assert.equal(parts.map((line) => line[2]).join(""), "é".repeat(10_000));
    assert.deepEqual(outcome.lines.at(-1)?.slice(1, 4), ["o", "next", false]);
    assert.deepEqual([outcome.result?.streamed, outcome.result?.missed], [4, 0]);
  });

  it("delivers the lines of a command that timed out", async () => {
    await start();
    const { commands, results } = files();
    const outcome = await runStream(commands, results, { command: "echo a; echo b >&2; sleep 30", follow: true, kwargs: `{"timeout": 0.5}` });
    assert.equal(outcome.code, "TIMEOUT", JSON.stringify(outcome));
    assert.deepEqual(outcome.lines, [[1, "o", "a", false, 0], [2, "e", "b", false, 0]]);
    assert.deepEqual([outcome.result?.streamed, outcome.result?.missed], [2, 0]);
  });

  it("tells a follower that stopped reading how many lines it missed once the daemon replaced the file after 5 s", async () => {
    await start();
    const { commands, results } = files();
    const marker = tmp.file("marker");
    // About 2.7 MB: the first file (1 MiB) is replaced at once (the follower has it open), the
    // second one after the daemon's 5 s wait for a follower stuck in on_line at line 1.
    const outcome = await runStream(commands, results, { command: `echo x >> '${marker}'; seq 400000`, follow: true, sleepAt: { seq: 1, seconds: 8 } });
    assert.equal(outcome.ok, true, outcome.message);
    const { streamed, missed } = outcome.result ?? {};
    assert.equal(streamed, 400_000);
    assert.ok(typeof missed === "number" && missed > 0, `missed ${missed}`);
    assert.equal(outcome.lines.length + missed, streamed, "received + missed = streamed");
    assert.equal(outcome.lines.reduce((sum, line) => sum + line[4], 0), missed, "each gap is reported on the line after it");
    let last = 0;
    for (const [seq, stream, text] of outcome.lines) {
      if (seq <= last || stream !== "o" || text !== String(seq)) assert.fail(`line ${seq} after ${last}: ${stream} ${text}`);
      last = seq;
    }
    assert.ok(outcome.elapsed >= 5, `took ${outcome.elapsed} s`);
    assert.equal(runsIn(marker), 1, "the command ran once");
  });

  it("raises what on_line raised once the command has ended and its result is collected", async () => {
    await start();
    const { commands, results } = files();
    const marker = tmp.file("marker");
    const outcome = await runStream(commands, results, { command: `seq 3; sleep 0.3; echo x >> '${marker}'`, follow: true, raiseAt: 2 });
    assert.equal(outcome.raised, "ValueError", JSON.stringify(outcome));
    assert.deepEqual(outcome.lines.map((line) => line[0]), [1, 2], "no call after the one that raised");
    assert.equal(runsIn(marker), 1, "the command ran to its end, once");
    assert.equal(readOrEmpty(results), "", "its result was collected");
  });

  it("its CLI: --follow prints lines as they come, --cwd, --env NAME=VALUE and --stdin - reach the command", async () => {
    await start();
    const { commands, results } = files();
    const dir = tmp.file("work");
    mkdirSync(dir);
    const child = spawn(PYTHON, [path.join(PYTHON_DIR, "file_daemon.py"), commands, results, String(SLEEP), "-f", "--cwd", dir, "--env", "A=1", "--env", "B=x=y", "--stdin", "-", "--", 'pwd; echo "$A $B"; cat; echo oops >&2; exit 3'], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.end("from stdin\n");
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) => child.once("close", resolve));
    assert.equal(code, 3, stderr);
    assert.equal(stdout, `${dir}\n1 x=y\nfrom stdin\n`);
    assert.equal(stderr, "oops\n");
  });
});
