import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Daemon } from "../../src/daemon/daemon";
import { useTempDir } from "../helpers/temp-dir";

const run = promisify(execFile);
const SUBMITTER = path.join(__dirname, "..", "fixtures", "submit-many.js");

interface Line {
  marker: string;
  expected: number;
  code?: number;
  stdout?: string;
  error?: string;
}

async function submitFromProcesses(commands: string, results: string, log: string, processes: number, each: number): Promise<Line[]> {
  const outputs = await Promise.all(
    Array.from({ length: processes }, (_, p) => run(process.execPath, [SUBMITTER, commands, results, `proc${p}`, String(each), log], { maxBuffer: 1 << 24 })),
  );
  return outputs.flatMap(({ stdout }) => stdout.trim().split("\n").map((line) => JSON.parse(line) as Line));
}

function checkExactlyOnce(lines: Line[], log: string, total: number): void {
  const errors = lines.filter((line) => line.error !== undefined);
  assert.deepEqual(errors, [], "no submitter got an error");
  assert.equal(lines.length, total);
  const misattributed = lines.filter((line) => line.code !== line.expected || line.stdout !== line.marker);
  assert.deepEqual(misattributed, [], "every submitter got its own command's code and output");
  const ran = readFileSync(log, "utf8").trim().split("\n");
  const counts = new Map<string, number>();
  for (const marker of ran) counts.set(marker, (counts.get(marker) ?? 0) + 1);
  const duplicated = [...counts].filter(([, n]) => n > 1);
  const lost = lines.filter((line) => !counts.has(line.marker));
  assert.deepEqual(duplicated, [], "no command ran twice");
  assert.deepEqual(lost, [], "no command was lost");
  assert.equal(ran.length, total);
}

describe("many submitter processes on the same files", function () {
  this.timeout(180_000);
  const tmp = useTempDir();
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
  });

  for (const channels of [1, 4]) {
    it(`runs 4 processes × 100 commands exactly once each, on ${channels} channel(s)`, async () => {
      daemon = await Daemon.start({ commands: tmp.file("commands"), results: tmp.file("results"), sleepTime: 0.5, channels });
      const lines = await submitFromProcesses(tmp.file("commands"), tmp.file("results"), tmp.file("ran.log"), 4, 100);
      checkExactlyOnce(lines, tmp.file("ran.log"), 400);
    });
  }
});
