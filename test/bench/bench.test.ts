import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { leftovers } from "./leftovers";
import { LABELS } from "../../bench/table";

const RUN = path.resolve(__dirname, "..", "..", "bench", "run.js");

/** Our temp directories left in os.tmpdir() or /dev/shm. */
const ours = () => leftovers("file-daemon-bench-");

/**
 * The benchmark keeps working: `--quick` exits 0 and prints every row. Nothing here is timed
 * (the machine is noisy): a MISS is a figure to look at, not a failing test.
 */
describe("npm run bench -- --quick", function () {
  this.timeout(120_000);

  it("exits 0 and prints the machine and every row of the table, and leaves no temp files", async () => {
    const before = new Set(ours());
    const child = spawn(process.execPath, [RUN, "--quick"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // 'close', not 'exit': at 'exit' the end of the table may still be unread in the pipe.
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    assert.equal(code, 0, `exit ${code}\n${stderr}\n${stdout}`);
    for (const field of ["Date:", "CPU:", "Node:", "Node-RED", "Files:", "Memory:"]) assert.ok(stdout.includes(field), `no ${field} in:\n${stdout}`);
    // The header names the Node and libuv the processes ran on: this test's Node (quick measures on it only).
    assert.ok(stdout.includes(`Node:     v${process.versions.node}, libuv ${process.versions.uv},`), `no Node/libuv versions in:\n${stdout}`);
    const rows = stdout.split("\n").filter((line) => line.startsWith("| "));
    for (const label of Object.values(LABELS)) {
      assert.ok(
        rows.some((row) => row.startsWith(`| ${label}`)),
        `no row "${label}" in:\n${stdout}`,
      );
    }
    // --quick: +0, then one small size of each kind of memory, each (+0 too) in a fresh Node-RED process.
    const heapRows = rows.filter((row) => row.startsWith(`| ${LABELS.heap}`));
    assert.deepEqual(
      heapRows.map((row) => /^\| Node-RED holding (\+\d+ [MG]iB)( of Buffers \(off-heap| of JS objects \(V8 heap)?[^|]*, fresh process \(/.exec(row)?.slice(1)),
      [
        ["+0 MiB", undefined],
        ["+256 MiB", " of Buffers (off-heap"],
        ["+256 MiB", " of JS objects (V8 heap"],
      ],
      heapRows.join("\n"),
    );
    for (const row of rows.slice(1)) assert.doesNotMatch(row, /NaN|undefined/, row);
    // The sidebar tab open vs closed: the driver's GETs were all answered (200, JSON, every config node), and the row has its CPU and event-loop figures and a verdict.
    const tab = rows.find((row) => row.startsWith(`| ${LABELS.sidebarTab}`)) ?? "";
    assert.match(tab, /; [1-9]\d* requests? in \d+ s for CPU, [1-9]\d* for the event loop; 0 failed\) \| /, tab);
    assert.match(tab, /\| CPU \d+\.\d{3} % vs \d+\.\d{3} % of a core \(Δ [+-]\d+\.\d{3} %, ≈ -?\d+\.\d{2} ms per answer; /, tab);
    assert.match(tab, /; event loop p99 \d+\.\d vs \d+\.\d ms \([+-]\d+\.\d ms\), max \d+\.\d vs \d+\.\d ms \([+-]\d+\.\d ms\); /, tab);
    assert.match(tab, /\| Δ CPU ≤ 0\.1 % of a core; p99 ≤ closed \+ 1 ms, max ≤ closed \+ 3 ms; [^|]*\| (PASS|MISS) \|$/, tab);
    // Last, issue #12's targets: one line with a verdict for each, then one line each with its figures and thresholds.
    const lines = stdout.trimEnd().split("\n");
    const at = lines.findIndex((line) => line.startsWith("targets: "));
    assert.ok(at >= 0, `no "targets:" line in:\n${stdout}`);
    assert.match(lines[at] ?? "", /^targets: T1 (PASS|FAIL|n\/a) {2}T2 (PASS|FAIL|n\/a) {2}T3 (PASS|FAIL|n\/a) {2}T4 (PASS|FAIL|n\/a) {2}T5 (PASS|FAIL|n\/a)$/);
    const details = lines.slice(at + 1, at + 6);
    assert.deepEqual(
      details.map((line) => /^ {2}(T\d) (PASS|FAIL|n\/a) {2}\S/.exec(line)?.[1]),
      ["T1", "T2", "T3", "T4", "T5"],
      details.join("\n"),
    );
    for (const line of details) {
      assert.match(line, /[≤≥=] ?\+?[\d.]/, `no threshold in: ${line}`);
      assert.doesNotMatch(line, /NaN|undefined/, line);
    }
    // The soak ran (--quick does a short one) and T3 names it.
    assert.match(details[2] ?? "", /soak \d/, details[2]);
    assert.ok(
      lines.slice(at).every((line) => !line.startsWith("| ")),
      "the targets block comes after the table",
    );
    assert.deepEqual(
      ours().filter((name) => !before.has(name)),
      [],
    );
  });
});
