import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { CommandFailedError, submitCommand, type SubmitOptions } from "../../src/client/submit";
import type { OutputLine } from "../../src/client/stream-follower";
import { STREAM_FILE_MAX, STREAM_LINE_MAX } from "../../src/protocol/limits";
import { CLI, startDaemonProcess, stopDaemonProcess, type DaemonProcess } from "../helpers/daemon-process";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

/** Issue #13 item 1: a command's output line by line while it runs, through R.stream (PROTOCOL.md §5, "stream"). */
describe("following a command's output (stream)", function () {
  this.timeout(120_000);
  const tmp = useTempDir();
  let daemon: DaemonProcess | undefined;
  const commands = () => tmp.file("commands");
  const results = () => tmp.file("results");

  function follow(command: string, options: SubmitOptions = {}, onLine?: (line: OutputLine) => void): { lines: OutputLine[]; done: ReturnType<typeof submitCommand> } {
    const lines: OutputLine[] = [];
    const done = submitCommand(command, commands(), results(), 0.2, {
      ...options,
      onLine: (line) => {
        lines.push(line);
        onLine?.(line);
      },
    });
    return { lines, done };
  }
  const runs = (marker: string) => (existsSync(marker) ? readFileSync(marker, "utf8").length : 0);

  beforeEach(async () => {
    daemon = await startDaemonProcess(commands(), results(), 0.2, ["--channels", "4"]);
  });
  afterEach(async () => {
    await stopDaemonProcess(daemon);
  });

  it("delivers 100 000 lines (and stderr) exactly once, in order, none missed, then the result", async () => {
    const marker = tmp.file("marker");
    const { lines, done } = follow(`echo x >> '${marker}'; seq 100000; echo done >&2`);
    const result = await done;
    assert.equal(result.code, 0);
    const stdout = lines.filter((line) => line.stream === "stdout").map((line) => line.text);
    assert.equal(stdout.length, 100_000);
    for (let i = 0; i < stdout.length; i++) if (stdout[i] !== String(i + 1)) assert.fail(`line ${i + 1} is ${stdout[i]}`);
    assert.deepEqual(lines.filter((line) => line.stream === "stderr").map((line) => line.text), ["done"]);
    assert.deepEqual(lines.map((line) => line.seq), Array.from({ length: 100_001 }, (_, i) => i + 1), "seq counts every line once");
    assert.equal(result.streamed, 100_001);
    assert.equal(result.missed, 0);
    assert.ok(lines.every((line) => line.missed === 0 && line.id === result.id && !line.partial));
    assert.equal(runs(marker), 2, "it ran once");
    assert.equal(existsSync(`${results()}.stream`), false, "the follower removed the stream file");
    assert.equal(existsSync(`${results()}.stream.read`), false);
  });

  it("cuts a line longer than the bound into parts flagged partial, and keeps the characters whole", async () => {
    // 20 000 bytes: "é" (2 bytes) after an odd number of ASCII bytes straddles every 8192-byte cut.
    const { lines, done } = follow(`printf 'a'; i=0; while [ $i -lt 9999 ]; do printf 'é'; i=$((i+1)); done; printf '\\r\\nlast without newline'`);
    const result = await done;
    const expected = `a${"é".repeat(9999)}`;
    const parts = lines.slice(0, -1);
    assert.ok(parts.length >= 3);
    assert.ok(parts.slice(0, -1).every((line) => line.partial) && !parts[parts.length - 1]?.partial);
    assert.ok(parts.every((line) => Buffer.byteLength(line.text) <= STREAM_LINE_MAX));
    assert.equal(parts.map((line) => line.text).join(""), expected, "the parts make the line, without its \\r");
    assert.equal(lines[lines.length - 1]?.text, "last without newline");
    assert.equal(result.streamed, lines.length);
  });

  it("a follower that stops reading holds the command back for 5 s, then loses files and is told how many lines", async () => {
    let blocked = false;
    const { lines, done } = follow("seq 400000", {}, () => {
      if (blocked) return;
      blocked = true;
      // The follower's event loop stops for 8 s at the first line (a frozen Node-RED).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 8000);
    });
    const result = await done;
    const missed = result.missed ?? 0;
    assert.equal(result.streamed, 400_000);
    assert.ok(missed > 0, "it fell behind by more than two files");
    assert.equal(lines.length + missed, 400_000, "every line is either delivered or counted as missed");
    assert.equal(lines.reduce((sum, line) => sum + line.missed, 0), missed, "the gap is reported where it is");
    const texts = lines.map((line) => Number(line.text));
    assert.ok(texts.every((value, i) => i === 0 || value > (texts[i - 1] ?? 0)), "what arrives is in order, without duplicates");
    assert.match(daemon?.output() ?? "", /has not opened its stream file for \d+ ms; replacing it anyway/);
  });

  it("disk use stays bounded: a stream file holds 1 MiB plus the records of one read of output", async () => {
    let largest = 0;
    const { done } = follow("seq 600000", {}, (line) => {
      if (line.seq % 1000 !== 0) return;
      for (const suffix of ["", ".1", ".2", ".3"]) {
        try {
          largest = Math.max(largest, statSync(`${results()}${suffix}.stream`).size);
        } catch {
          // Not this channel, or between two files.
        }
      }
    });
    await done;
    // One read of a pipe is at most 64 KiB; `seq`'s short lines more than double in records.
    assert.ok(largest > STREAM_FILE_MAX / 2 && largest <= STREAM_FILE_MAX + 256 * 1024, `largest stream file ${largest} bytes`);
  });

  it("a killed or timed-out command still delivers the lines it printed", async () => {
    const abort = new AbortController();
    const killed = follow("echo one; echo two >&2; sleep 30", { signal: abort.signal });
    await waitFor("two lines", () => killed.lines.length === 2);
    abort.abort();
    const error = await killed.done.catch((err: unknown) => err);
    assert.ok(error instanceof CommandFailedError, String(error));
    assert.equal(error.code, "KILLED");
    assert.ok(error.result !== null);
    assert.equal(error.result.streamed, 2);
    assert.equal(error.result.missed, 0);
    assert.deepEqual(killed.lines.map((line) => `${line.stream}:${line.text}`), ["stdout:one", "stderr:two"]);
    const timedOut = follow("echo before; sleep 30", { timeout: 0.5 });
    const timeout = await timedOut.done.catch((err: unknown) => err);
    assert.equal((timeout as CommandFailedError).code, "TIMEOUT");
    assert.deepEqual(timedOut.lines.map((line) => line.text), ["before"]);
  });

  it("commands followed at once on four channels each get their own lines only", async () => {
    const followed = Array.from({ length: 8 }, (_, n) => follow(`i=0; while [ $i -lt 2000 ]; do echo ${n}-$i; i=$((i+1)); done`));
    const outcomes = await Promise.all(followed.map((one) => one.done));
    for (const [n, one] of followed.entries()) {
      assert.equal(outcomes[n]?.streamed, 2000);
      assert.deepEqual(one.lines.map((line) => line.text), Array.from({ length: 2000 }, (_, i) => `${n}-${i}`), `command ${n}`);
    }
  });

  it("the daemon killed while it streams: the lines so far, DAEMON_DIED, and it is never run again", async () => {
    const marker = tmp.file("marker");
    const { lines, done } = follow(`echo x >> '${marker}'; echo started; sleep 30`);
    await waitFor("the first line", () => lines.length === 1);
    daemon?.child.kill("SIGKILL");
    const error = await done.catch((err: unknown) => err);
    assert.equal((error as CommandFailedError).code, "DAEMON_DIED");
    assert.deepEqual(lines.map((line) => line.text), ["started"]);
    daemon = await startDaemonProcess(commands(), results(), 0.2, ["--channels", "4"]);
    // The new daemon's recovery removes the stream file nobody will write any more.
    assert.equal((await submitCommand("true", commands(), results(), 0.2)).code, 0);
    for (const suffix of ["", ".1", ".2", ".3"]) assert.equal(existsSync(`${results()}${suffix}.stream`), false, `channel${suffix}`);
    assert.equal(runs(marker), 2, "it ran once");
  });

  it("a follower killed mid-stream does not hold the command: the daemon sees its submitter gone and goes on", async () => {
    const ended = tmp.file("ended");
    // The CLI follows with its stdout unread: it blocks at once, then is SIGKILLed.
    const follower = spawn(process.execPath, [CLI, "submit", "-c", commands(), "-r", results(), "-s", "0.2", "--follow", "--", `seq 500000; touch '${ended}'`], { stdio: ["ignore", "pipe", "ignore"] });
    await new Promise((resolve) => follower.stdout.once("data", resolve));
    follower.kill("SIGKILL");
    const killedAt = performance.now();
    // 500 000 lines are four stream files: a live but stalled follower would hold each for 5 s.
    await waitFor("the command to end", () => existsSync(ended), 30_000);
    assert.ok(performance.now() - killedAt < 5000, `the command ended ${Math.round(performance.now() - killedAt)} ms after its follower was killed`);
    // Its result names a submitter that is gone: the next command takes the channel.
    assert.equal((await submitCommand("true", commands(), results(), 0.2)).code, 0);
  });

  it("what onLine throws reaches the caller once the command has ended and its result is collected; the command runs once", async () => {
    const marker = tmp.file("marker");
    const { lines, done } = follow(`echo x >> '${marker}'; seq 5`, {}, (line) => {
      if (line.seq === 2) throw new Error("the flow broke");
    });
    await assert.rejects(done, /the flow broke/);
    assert.deepEqual(lines.map((line) => line.text), ["1", "2"], "no line after the one that threw");
    assert.equal(readFileSync(results(), "utf8"), "", "the result was collected");
    assert.equal(runs(marker), 2);
  });

  it("a FIFO or a symbolic link put at R.stream.read neither hangs nor misleads the daemon; a directory at R.stream is logged and the command still ends", async () => {
    await stopDaemonProcess(daemon);
    daemon = await startDaemonProcess(commands(), results(), 0.2);
    execFileSync("mkfifo", [`${results()}.stream.read`]);
    const fifo = await follow("seq 3").done;
    assert.equal(fifo.streamed, 3);
    symlinkSync("/dev/zero", `${results()}.stream.read`);
    const link = await follow("seq 3").done;
    assert.equal(link.missed, 0);
    mkdirSync(`${results()}.stream`);
    const { lines, done } = follow("echo after");
    const result = await done;
    assert.equal(result.code, 0);
    assert.equal(result.streamed, 1);
    assert.equal(lines.length + (result.missed ?? 0), 1, "its line delivered or counted as missed");
    assert.match(daemon.output(), /cannot (remove|write) .*results\.stream/);
  });

  it("a background writer that outlives the shell: the result is published within the follower wait, not never", async () => {
    const started = performance.now();
    // `yes` fills stream files far faster than a follower hands lines on; the shell exits at once.
    const { done } = follow("yes & exit 0");
    const result = await done;
    assert.equal(result.code, 0);
    assert.ok(performance.now() - started < 20_000, `published after ${Math.round(performance.now() - started)} ms`);
  });
});
