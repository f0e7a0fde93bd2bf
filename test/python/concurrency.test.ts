// Python and JavaScript submitter processes sharing the same files with one daemon: every
// command runs exactly once and every submitter gets its own command's result.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { bytesOf, expectedCode, markedCommand, readOrEmpty, runPython, usePythonSuite } from "./helpers";

const execFileAsync = promisify(execFile);
const JS_SUBMITTER = path.join(__dirname, "js-submitter.js");
const EACH = 25;
/** Commands per submitter in the contention test. */
const HAMMER = 40;

interface Got {
  readonly who: string;
  readonly marker: string;
  readonly code: number | null | undefined;
  readonly stdout: string | null | undefined;
  readonly error?: string;
  /** Seconds from the call to its result. */
  readonly elapsed: number;
}

async function pythonSubmitter(commands: string, results: string, name: string, log: string, each = EACH): Promise<Got[]> {
  const calls = Array.from({ length: each }, (_, i) => {
    const { marker, command } = markedCommand(name, i, log);
    return { marker, command, kwargs: { capture: true } };
  });
  const outcomes = await runPython(commands, results, calls);
  return outcomes.map((o) => ({
    who: name,
    marker: o.marker ?? "?",
    code: o.result?.code,
    stdout: bytesOf(o.result?.stdout)?.toString("utf8"),
    elapsed: o.elapsed,
    ...(o.ok ? {} : { error: `${o.code}: ${o.message}` }),
  }));
}

async function jsSubmitter(commands: string, results: string, name: string, log: string, each = EACH): Promise<Got[]> {
  const { stdout } = await execFileAsync(process.execPath, [JS_SUBMITTER, commands, results, name, String(each), log], { maxBuffer: 1 << 24 });
  return stdout
    .trim()
    .split("\n")
    .map((line) => ({ who: name, ...(JSON.parse(line) as Omit<Got, "who">) }));
}

describe("python client: concurrent Python and JavaScript submitters", function () {
  this.timeout(60_000);
  const { tmp, start } = usePythonSuite();

  for (const channels of [1, 3]) {
    it(`2 Python + 2 JavaScript processes × ${EACH} commands on ${channels} channel(s): each runs once, each result reaches its submitter`, async () => {
      const commands = tmp.file("commands");
      const results = tmp.file("results");
      const log = tmp.file("ran.log");
      await start({ channels });
      const all = (
        await Promise.all([
          pythonSubmitter(commands, results, "py0", log),
          pythonSubmitter(commands, results, "py1", log),
          jsSubmitter(commands, results, "js0", log),
          jsSubmitter(commands, results, "js1", log),
        ])
      ).flat();

      assert.deepEqual(all.filter((got) => got.error !== undefined), [], "no submitter got an error");
      assert.equal(all.length, 4 * EACH);
      const misattributed = all.filter((got) => got.code !== expectedCode(got.marker) || got.stdout !== got.marker);
      assert.deepEqual(misattributed, [], "every submitter got its own command's exit code and output");

      const ran = readOrEmpty(log).trim().split("\n");
      const counts = new Map<string, number>();
      for (const marker of ran) counts.set(marker, (counts.get(marker) ?? 0) + 1);
      assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], "no command ran twice");
      assert.deepEqual(all.filter((got) => !counts.has(got.marker)), [], "no command was lost");
      assert.equal(ran.length, 4 * EACH, "nothing else ran");
      for (let i = 0; i < channels; i++) {
        const suffix = i === 0 ? "" : `.${i}`;
        assert.equal(readOrEmpty(commands + suffix) + readOrEmpty(results + suffix), "", `channel ${i} is left free`);
      }
    });
  }
  it(`2 Python + 2 JavaScript processes hammering 1 channel: Python is not starved (busy locks retried within ms)`, async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const log = tmp.file("ran.log");
    await start();
    const began = performance.now();
    const finished = async (run: Promise<Got[]>) => {
      const got = await run;
      return { got, at: (performance.now() - began) / 1000 };
    };
    const [py0, py1, js0, js1] = await Promise.all([
      finished(pythonSubmitter(commands, results, "py0", log, HAMMER)),
      finished(pythonSubmitter(commands, results, "py1", log, HAMMER)),
      finished(jsSubmitter(commands, results, "js0", log, HAMMER)),
      finished(jsSubmitter(commands, results, "js1", log, HAMMER)),
    ]);
    const all = [py0, py1, js0, js1].flatMap((s) => s.got);
    assert.deepEqual(all.filter((got) => got.error !== undefined), [], "no submitter got an error");
    const ran = readOrEmpty(log).trim().split("\n");
    const counts = new Map<string, number>();
    for (const marker of ran) counts.set(marker, (counts.get(marker) ?? 0) + 1);
    assert.equal(all.length, 4 * HAMMER);
    assert.deepEqual(all.filter((got) => counts.get(got.marker) !== 1), [], "every command ran exactly once");
    assert.equal(ran.length, 4 * HAMMER, "nothing else ran");

    const worst = (s: { got: Got[] }) => Math.max(...s.got.map((got) => got.elapsed));
    const python = { done: Math.max(py0.at, py1.at), worst: Math.max(worst(py0), worst(py1)) };
    const js = { done: Math.max(js0.at, js1.at), worst: Math.max(worst(js0), worst(js1)) };
    console.log(`      Python done after ${python.done.toFixed(2)} s (worst command ${python.worst.toFixed(3)} s); JavaScript after ${js.done.toFixed(2)} s (worst ${js.worst.toFixed(3)} s)`);
    // Loose, relative bounds (this machine is noisy): Python keeps up with the JavaScript clients.
    assert.ok(python.done <= 4 * js.done, `the Python submitters finished within 4 × the JavaScript ones' time (${python.done.toFixed(2)} s vs ${js.done.toFixed(2)} s)`);
    assert.ok(python.worst <= Math.max(5 * js.worst, js.done), `no Python command waited longer than 5 × the worst JavaScript one or the whole JavaScript run (${python.worst.toFixed(3)} s vs ${js.worst.toFixed(3)} s)`);
  });
});
