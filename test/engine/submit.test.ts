import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { CommandFailedError, submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { isPidAlive } from "../../src/protocol/io/liveness";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

describe("submitCommand against a running daemon", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  const submit = (command: string, options = {}) => submitCommand(command, tmp.file("commands"), tmp.file("results"), 0.5, options);

  beforeEach(async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.5, killGraceMs: 500 });
  });
  afterEach(async () => {
    await daemon?.stop();
  });

  it("returns the exit code of the command", async () => {
    assert.equal((await submit("true")).code, 0);
    const result = await submit("exit 42");
    assert.equal(result.code, 42);
    assert.equal(result.signal, null);
    assert.equal(result.status, "exited");
  });

  it("reports a command that died of a signal with code null and the signal's name", async () => {
    const result = await submit("kill -USR1 $$");
    assert.equal(result.code, null);
    assert.equal(result.signal, "SIGUSR1");
    assert.equal(result.status, "signaled");
  });

  it("leaves both files empty after the result is collected", async () => {
    await submit("exit 3");
    assert.equal(readFileSync(tmp.file("commands"), "utf8"), "");
    assert.equal(readFileSync(tmp.file("results"), "utf8"), "");
  });

  it("captures stdout and stderr byte for byte when asked, and cuts them at the limit", async () => {
    const result = await submit("printf 'a\\377b'; printf err >&2", { capture: true });
    assert.deepEqual(result.stdout, Buffer.from([0x61, 0xff, 0x62]));
    assert.equal(result.stderr?.toString(), "err");
    const big = await submit("head -c 100000 /dev/zero", { capture: true });
    assert.equal(big.stdout?.length, 65_536);
    assert.equal(big.stdoutTruncated, true);
    const quiet = await submit("echo hidden");
    assert.equal(quiet.stdout, null);
  });

  it("kills the whole process group after the timeout and says so", async () => {
    const started = performance.now();
    const error = await submit(`sleep 30 & echo $! > '${tmp.file("grandchild")}'; wait`, { timeout: 0.3 }).catch((err: unknown) => err);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.code, "TIMEOUT");
    assert.equal(error.result?.signal, "SIGTERM");
    assert.ok(performance.now() - started < 5000);
    const grandchild = Number(readFileSync(tmp.file("grandchild"), "utf8"));
    await waitFor("the background sleep to be killed too", () => !isPidAlive(grandchild));
  });

  it("kills a running command when the submitter aborts", async () => {
    const abort = new AbortController();
    const pending = submit(`touch '${tmp.file("started")}'; sleep 30`, { signal: abort.signal });
    await waitFor("the command to start", () => existsSync(tmp.file("started")));
    abort.abort();
    const error = await pending.catch((err: unknown) => err);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.code, "KILLED");
    assert.equal(error.result?.signal, "SIGTERM");
  });

  it("kills with the signal named by the abort's reason (SIGINT), sent to the whole process group", async () => {
    const abort = new AbortController();
    const marker = tmp.file("trapped");
    const pending = submit(`trap 'echo INT >> "${marker}"; exit 5' INT; touch '${tmp.file("started")}'; while :; do sleep 0.1; done`, { signal: abort.signal });
    await waitFor("the command to start", () => existsSync(tmp.file("started")));
    abort.abort("SIGINT");
    const error = await pending.catch((err: unknown) => err);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.code, "KILLED");
    assert.equal(error.result?.code, 5, "the shell ran its INT trap and exited by itself");
    assert.match(error.message, /SIGINT/);
    assert.equal(readFileSync(marker, "utf8"), "INT\n");
  });

  it("gives up on a command still waiting for a free channel when the submitter aborts", async () => {
    const blocker = submit("sleep 1");
    await waitFor("the first command to run", () => readFileSync(tmp.file("results"), "utf8").includes('"running"'));
    const abort = new AbortController();
    const waiting = submit(`touch '${tmp.file("must-not-run")}'`, { signal: abort.signal });
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(waiting, { code: "ABORTED" });
    assert.equal((await blocker).code, 0);
    assert.equal((await submit("true")).code, 0);
    assert.equal(existsSync(tmp.file("must-not-run")), false);
  });

  it("runs commands in their own session, with stdin at /dev/null", async () => {
    const result = await submit("ps -o sid= -p $$; ps -o pid= -p $$; readlink /proc/self/fd/0", { capture: true });
    const [sid, pid, stdin] = (result.stdout?.toString() ?? "").split("\n").map((s) => s.trim());
    assert.equal(sid, pid, "the shell leads its own session and process group");
    assert.equal(stdin, "/dev/null");
  });
});

describe("a command placed but not yet taken", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
  });

  it("is withdrawn from the commands file when the submitter aborts, and never runs", async () => {
    // A slow, poll-only daemon leaves the command in the commands file for a while.
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 3, watch: false });
    // After a command, the daemon's next look is sleep_time away.
    assert.equal((await submitCommand("true", tmp.file("commands"), tmp.file("results"), 0.05)).code, 0);
    const abort = new AbortController();
    const queued = submitCommand(`touch '${tmp.file("must-not-run")}'`, tmp.file("commands"), tmp.file("results"), 0.05, { signal: abort.signal });
    await waitFor("the command to be placed", () => readFileSync(tmp.file("commands"), "utf8") !== "");
    abort.abort();
    await assert.rejects(queued, { code: "ABORTED" });
    assert.equal(readFileSync(tmp.file("commands"), "utf8"), "");
    await new Promise((resolve) => setTimeout(resolve, 3500));
    assert.equal(existsSync(tmp.file("must-not-run")), false);
  });
});

describe("the daemon with several channels", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
  });

  it("runs a quick command while a long one holds another channel", async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.5, channels: 3, killGraceMs: 200 });
    const abort = new AbortController();
    const long = submitCommand("sleep 30", tmp.file("commands"), tmp.file("results"), 0.5, { signal: abort.signal }).catch((err: unknown) => err);
    await waitFor("the long command to run", () => [0, 1, 2].some((k) => readFileSync(tmp.file(k === 0 ? "results" : `results.${k}`), "utf8").includes('"running"')));
    const started = performance.now();
    assert.equal((await submitCommand("exit 5", tmp.file("commands"), tmp.file("results"), 0.5)).code, 5);
    assert.ok(performance.now() - started < 2000, "the quick command did not wait for the long one");
    abort.abort();
    assert.equal(((await long) as CommandFailedError).code, "KILLED");
  });
});

describe("the daemon without change events (poll-only fallback)", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
  });

  it("still serves every command, one sleep_time at a time", async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.1, watch: false });
    for (let i = 0; i < 3; i++) {
      const result = await submitCommand(`exit ${i}`, tmp.file("commands"), tmp.file("results"), 0.1, { watch: false });
      assert.equal(result.code, i);
    }
  });
});
