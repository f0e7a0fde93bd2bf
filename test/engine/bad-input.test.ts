import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { MAX_COMMAND_BYTES } from "../../src/protocol/limits";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

const run = promisify(execFile);

describe("bad input", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  const submit = (command: unknown, options = {}) => submitCommand(command as string, tmp.file("commands"), tmp.file("results"), 0.2, options);

  beforeEach(async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.2 });
  });
  afterEach(async () => {
    await daemon?.stop();
  });

  const badCommands: [string, unknown, RegExp][] = [
    ["an empty command", "", /empty/],
    ["a whitespace command", "  \t ", /empty/],
    ["a command with a newline", "echo a\necho b", /line break/],
    ["a command with a carriage return", "echo a\recho b", /line break/],
    ["a command with a NUL byte", "echo a\0b", /NUL/],
    ["a number", 42, /must be a string, got number/],
    ["null", null, /must be a string, got null/],
    ["an object", { cmd: "ls" }, /must be a string, got object/],
    ["a Buffer", Buffer.from("ls"), /must be a string, got a Buffer/],
    ["a lone surrogate", "echo \ud800", /not valid Unicode/],
    ["a command over the size limit", `echo ${"x".repeat(MAX_COMMAND_BYTES)}`, /limit is 65536 bytes/],
  ];

  for (const [name, command, message] of badCommands) {
    it(`rejects ${name} with BAD_COMMAND and writes nothing`, async () => {
      await assert.rejects(submit(command), (err: Error & { code?: string }) => {
        assert.equal(err.code, "BAD_COMMAND");
        assert.match(err.message, message);
        return true;
      });
      assert.equal(readFileSync(tmp.file("commands"), "utf8"), "");
    });
  }

  it("accepts a command of exactly the size limit", async () => {
    const command = `: ${"x".repeat(MAX_COMMAND_BYTES - 2)}`;
    assert.equal(Buffer.byteLength(command), MAX_COMMAND_BYTES);
    assert.equal((await submit(command)).code, 0);
  });

  it("rejects a bad sleep time or timeout with BAD_OPTION", async () => {
    await assert.rejects(submitCommand("true", tmp.file("commands"), tmp.file("results"), 0), { code: "BAD_OPTION" });
    await assert.rejects(submitCommand("true", tmp.file("commands"), tmp.file("results"), Number.NaN), { code: "BAD_OPTION" });
    await assert.rejects(submit("true", { timeout: -1 }), { code: "BAD_OPTION" });
  });

  it("names a missing directory", async () => {
    const missing = path.join(tmp.path, "nope", "commands");
    await assert.rejects(submitCommand("true", missing, path.join(tmp.path, "nope", "results"), 0.2), (err: Error & { code?: string }) => {
      assert.equal(err.code, "NO_DIRECTORY");
      assert.match(err.message, /does not exist/);
      return true;
    });
    await assert.rejects(Daemon.start({ commands: missing, results: path.join(tmp.path, "nope", "results"), sleepTime: 0.2 }), { code: "NO_DIRECTORY" });
  });

  it("names a directory this user cannot write (PERMISSION), as an unprivileged user", async function () {
    if (process.getuid?.() !== 0) {
      chmodSync(tmp.path, 0o500);
      await assert.rejects(submit("true"), { code: "PERMISSION" });
      chmodSync(tmp.path, 0o700);
      return;
    }
    // Root ignores permissions: ask a real unprivileged process (nobody) to submit.
    chmodSync(tmp.path, 0o755);
    const script = `require(${JSON.stringify(path.join(__dirname, "..", "..", "src", "client", "submit.js"))}).submitCommand("true", ${JSON.stringify(tmp.file("commands"))}, ${JSON.stringify(tmp.file("results"))}, 0.2).then(() => console.log("OK"), (e) => console.log(e.code + ": " + e.message))`;
    const { stdout } = await run(process.execPath, ["-e", script], { uid: 65534, gid: 65534 });
    assert.match(stdout, /^PERMISSION: .*permission denied/);
  });

  it("clears garbage in the results file and keeps serving", async () => {
    await daemon?.stop();
    writeFileSync(tmp.file("results"), "\u0000\u0001 not a result at all\n{broken json\n", { mode: 0o600 });
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.2 });
    assert.equal((await submit("exit 12")).code, 12);
  });

  it("removes a commands line that is not valid UTF-8, written by a third party, without a result nobody would collect, and keeps serving", async () => {
    writeFileSync(tmp.file("commands"), Buffer.from([0x65, 0x63, 0x68, 0x6f, 0x20, 0xff, 0xfe, 0x0a]), { mode: 0o600 });
    await waitFor("the daemon to remove the line", () => readFileSync(tmp.file("commands"), "utf8") === "");
    assert.equal(readFileSync(tmp.file("results"), "utf8"), "", "no result blocks the channel");
    assert.equal((await submit("exit 4")).code, 4);
  });
});

describe("a seed-style (legacy) submitter and reader", () => {
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
  });

  it("writes line 1 only, reads line 1 of results, and gets the plain return code", async () => {
    daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.1 });
    const lockfile = await import("proper-lockfile");
    const lock = (file: string) => lockfile.lock(file, { realpath: false, retries: { retries: 100, minTimeout: 20, maxTimeout: 50 } });
    const releaseCommands = await lock(tmp.file("commands"));
    writeFileSync(tmp.file("commands"), "exit 7\n");
    await releaseCommands();
    const line1 = await waitFor("a number on line 1 of results", async () => {
      const release = await lock(tmp.file("results"));
      try {
        const first = readFileSync(tmp.file("results"), "utf8").split("\n")[0] ?? "";
        if (/^-?\d+$/.test(first)) {
          writeFileSync(tmp.file("results"), "");
          return first;
        }
        return null;
      } finally {
        await release();
      }
    });
    assert.equal(line1, "7");
    assert.equal((await submitCommand("exit 8", tmp.file("commands"), tmp.file("results"), 0.1)).code, 8);
  });
});
