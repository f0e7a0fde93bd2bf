import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { CommandFailedError, submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { FileDaemonError } from "../../src/protocol/errors";
import { MAX_STDIN_BYTES } from "../../src/protocol/limits";
import { useTempDir } from "../helpers/temp-dir";

/** Issue #13 items 2 and 3: a command's working directory, environment and standard input, through line 2. */
describe("cwd, env and stdin against a running daemon", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  const submit = (command: string, options = {}) => submitCommand(command, tmp.file("commands"), tmp.file("results"), 0.2, options);
  const runs = (marker: string) => (existsSync(marker) ? readFileSync(marker, "utf8").length : 0);

  beforeEach(async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.2 });
  });
  afterEach(async () => {
    await daemon?.stop();
  });

  it("runs the command in cwd, with env over the daemon's environment, reading stdin", async () => {
    const dir = tmp.file("work dir");
    mkdirSync(dir);
    const marker = tmp.file("marker");
    const stdin = Buffer.concat([Buffer.from("line one\n"), Buffer.from([0, 0xff, 0x0a])]);
    const result = await submit(`echo x >> '${marker}'; pwd; echo "$GREETING|$PATH"; od -An -c`, { capture: true, cwd: dir, env: { GREETING: "hello world" }, stdin });
    assert.equal(result.status, "exited");
    const [pwd, env, ...od] = (result.stdout?.toString() ?? "").split("\n");
    assert.equal(pwd, dir);
    assert.equal(env, `hello world|${process.env.PATH}`, "env is set over the daemon's own (PATH kept)");
    assert.match(od.join(" "), /l\s+i\s+n\s+e\s+o\s+n\s+e\s+\\n\s+\\0\s+377\s+\\n/);
    assert.equal(runs(marker), 2, "it ran once");
  });

  it("a command that does not read its stdin is not an error; stdin is /dev/null without it", async () => {
    assert.equal((await submit("true", { stdin: "x".repeat(200_000) })).code, 0);
    assert.equal((await submit("wc -c", { capture: true })).stdout?.toString().trim(), "0");
  });

  it("a cwd that does not exist is refused by the daemon (BAD_COMMAND naming it) and nothing runs", async () => {
    const marker = tmp.file("marker");
    const error = await submit(`touch '${marker}'`, { cwd: tmp.file("missing") }).catch((err: unknown) => err);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.code, "BAD_COMMAND");
    assert.match(error.message, /the working directory .*missing does not exist/);
    assert.equal(error.result?.status, "refused");
    assert.equal(existsSync(marker), false);
    writeFileSync(tmp.file("a file"), "");
    const notDir = await submit("true", { cwd: tmp.file("a file") }).catch((err: unknown) => err);
    assert.match(String(notDir), /is not a directory/);
  });

  it("refuses bad options before anything is written, naming what is wrong", async () => {
    writeFileSync(tmp.file("commands"), "");
    const cases: [object, RegExp][] = [
      [{ cwd: "relative/dir" }, /cwd must be an absolute path/],
      [{ cwd: "/tmp/\0x" }, /cwd must not contain a NUL byte/],
      [{ env: { "BAD-NAME": "x" } }, /env has the name "BAD-NAME"/],
      [{ env: { OK: 5 } }, /env OK must be a string/],
      [{ env: { BIG: "x".repeat(70_000) } }, /env is \d+ bytes long; the limit is 65536/],
      [{ stdin: Buffer.alloc(MAX_STDIN_BYTES + 1) }, /stdin is 1048577 bytes long; the limit is 1048576/],
      [{ stdin: 42 }, /stdin must be a string or a Buffer/],
    ];
    for (const [options, message] of cases) {
      const error = await submit("true", options).catch((err: unknown) => err);
      assert.ok(error instanceof FileDaemonError, String(error));
      assert.equal(error.code, "BAD_COMMAND", JSON.stringify(options));
      assert.match(error.message, message);
    }
    assert.equal(readFileSync(tmp.file("commands"), "utf8"), "", "nothing was placed");
    assert.equal((await submit("true", { stdin: Buffer.alloc(MAX_STDIN_BYTES) })).code, 0, "exactly 1 MiB is fine");
  });

  it("a hand-written line 2 with a bad option is refused by the daemon, never run", async () => {
    const marker = tmp.file("marker");
    await daemon?.stop();
    writeFileSync(tmp.file("commands"), `touch '${marker}'\n${JSON.stringify({ v: 1, id: "bad-env", pid: process.pid, env: { "A B": "x" } })}\n`);
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.2 });
    const deadline = Date.now() + 5000;
    while (!readFileSync(tmp.file("results"), "utf8").includes("refused") && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const results = readFileSync(tmp.file("results"), "utf8");
    assert.match(results, /"status":"refused"/);
    assert.match(results, /line 2 \\"env\\" has the name \\"A B\\"/);
    assert.equal(existsSync(marker), false);
  });

  it("a daemon that does not list a feature is not sent a command that needs it (INCOMPATIBLE)", async () => {
    const info = tmp.file("commands.daemon");
    const published = JSON.parse(readFileSync(info, "utf8")) as Record<string, unknown>;
    // What a daemon of before issue #13 publishes: no `features`.
    delete published.features;
    writeFileSync(info, `${JSON.stringify(published)}\n`);
    const error = await submit("true", { cwd: "/", stdin: "x" }).catch((err: unknown) => err);
    assert.ok(error instanceof FileDaemonError, String(error));
    assert.equal(error.code, "INCOMPATIBLE");
    assert.match(error.message, /cannot set a command's working directory or write to a command's standard input: upgrade it/);
  });
});
