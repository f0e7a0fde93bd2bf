import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { leftovers } from "./leftovers";
import { analyse, END_MARK, PHASES, SPAWN_LABEL, START_MARK, TOTAL_LABEL, type Event, type Kind, type Side } from "../../bench/profile-timeline";

const PROFILE = path.resolve(__dirname, "..", "..", "bench", "profile.js");

/** Our temp directories left in os.tmpdir() or /dev/shm. */
const ours = () => leftovers("file-daemon-profile-");

/** Nothing here is timed (the machine is noisy): the profile runs, and prints every row. */
describe("npm run profile", function () {
  this.timeout(120_000);

  it("with 5 rounds: exits 0, prints every phase, the total and the raw spawn in each table, and leaves no temp files", async () => {
    const before = new Set(ours());
    const child = spawn(process.execPath, [PROFILE, "--rounds", "5", "--warmup", "3"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    assert.equal(code, 0, `exit ${code}\n${stderr}\n${stdout}`);
    const tables = stdout.split("\n### Files in ").slice(1);
    assert.ok(tables.length >= 1, stdout);
    for (const table of tables) {
      const rows = table.split("\n").filter((line) => line.startsWith("| "));
      for (const label of [...PHASES.map((p) => p.label), `**${TOTAL_LABEL}**`, SPAWN_LABEL]) {
        assert.ok(
          rows.some((row) => row.startsWith(`| ${label} |`)),
          `no row "${label}" in:\n${table}`,
        );
      }
      for (const line of ["- **Adds up?**", "- **Skipped rounds:**", "- **The instrumentation's own cost:**", "- **Syscalls per round"]) assert.ok(table.includes(line), `no ${line} in:\n${table}`);
      assert.doesNotMatch(table, /NaN|undefined/);
    }
    assert.deepEqual(
      ours().filter((dir) => !before.has(dir)),
      [],
    );
  });
});

describe("profile timeline: cutting a round into phases", () => {
  let at = 0;
  const ev = (side: Side, kind: Kind, name: string, extra: string | number = ""): Event => ({ t: (at += 0.1), side, kind, name, dur: 0.01, extra });
  const hold = (side: Side, ...between: Event[]): Event[] => [ev(side, "mkdir", "commands.lock"), ev(side, "mkdir", "results.lock"), ...between, ev(side, "rmdir", "results.lock"), ev(side, "rmdir", "commands.lock")];
  const round = (index: number, parts: { extraLook?: boolean; busyCollect?: boolean; exits?: number } = {}): Event[] => [
    ev("submitter", "mark", `${START_MARK} ${index}`),
    ...hold("submitter", ev("submitter", "rename", "commands")),
    ...(parts.extraLook === true ? hold("submitter") : []),
    ev("daemon", "watch", "commands", "rename"),
    ...hold("daemon", ev("daemon", "rename", "results")),
    ...Array.from({ length: parts.exits ?? 1 }, () => ev("daemon", "exit", "", 42)),
    ev("daemon", "mkdir", "commands.lock"),
    ev("daemon", "mkdir", "results.lock"),
    ev("daemon", "rename", "results"),
    ...(parts.busyCollect === true ? [ev("submitter", "watch", "results", "rename"), ev("submitter", "mkdir", "commands.lock", "EEXIST")] : []),
    ev("daemon", "rmdir", "results.lock"),
    ev("daemon", "rmdir", "commands.lock"),
    ev("daemon", "spawn", "sh", 43),
    ...hold("submitter", ev("submitter", "rename", "results")),
    ev("submitter", "mark", `${END_MARK} ${index}`),
  ];

  it("a clean round: every phase, adding up to the round trip; a busy retry of the collect is counted in phase 7", () => {
    const events = [...round(0), ...round(1, { busyCollect: true })];
    const { rounds, skipped } = analyse(events);
    assert.deepEqual(skipped, []);
    assert.equal(rounds.length, 2);
    for (const r of rounds) {
      assert.equal(r.phases.length, PHASES.length);
      assert.ok(r.phases.every((ms) => ms >= 0));
      assert.ok(Math.abs(r.phases.reduce((a, b) => a + b, 0) - (r.end - r.start)) < 1e-9);
      assert.deepEqual(
        r.spawns.map((s) => s.phase),
        [7],
      );
    }
    assert.deepEqual(
      rounds.map((r) => r.retries),
      [[], [7]],
    );
  });

  it("skips, with the reason, a round with an extra lock cycle or without exactly one shell exit", () => {
    const events = [...round(0, { extraLook: true }), ...round(1, { exits: 0 }), ...round(2, { exits: 2 }), ...round(3)];
    const { rounds, skipped } = analyse(events);
    assert.deepEqual(
      rounds.map((r) => r.index),
      [3],
    );
    assert.deepEqual(
      skipped.map((s) => [s.index, s.reason]),
      [
        [0, "lock order differs: commands.lock held by submitter, submitter, daemon, daemon, submitter"],
        [1, "0 shell exits between the take and the publish"],
        [2, "2 shell exits between the take and the publish"],
      ],
    );
  });
});
