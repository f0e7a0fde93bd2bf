// removeDeadWritersTemps with real files: what a writer that died mid-write leaves is removed,
// and nothing else is, whatever its name, age, owner's liveness or kind.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lutimesSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { removeDeadWritersTemps } from "../../src/daemon/temp-cleanup";
import { useTempDir } from "../helpers/temp-dir";

/** The pid of a child that has exited and been reaped: it names no process (until pids wrap). */
function deadPid(): number {
  const child = spawnSync("true");
  assert.equal(child.status, 0);
  assert.ok(child.pid > 0);
  assert.throws(() => process.kill(child.pid, 0), { code: "ESRCH" });
  return child.pid;
}

const HOUR_AGO = () => new Date(Date.now() - 3600_000);

describe("removeDeadWritersTemps", () => {
  const tmp = useTempDir({ prefix: "file-daemon-temps-" });
  let dead: number;
  beforeEach(() => {
    dead = deadPid();
  });

  /** Creates `name` in the temp dir with `content`, an hour old unless `fresh`. */
  function make(name: string, options: { fresh?: boolean; content?: string } = {}): string {
    const file = tmp.file(name);
    writeFileSync(file, options.content ?? "partial");
    if (options.fresh !== true) utimesSync(file, HOUR_AGO(), HOUR_AGO());
    return file;
  }

  it("removes an old temp of a dead writer, and returns its path", () => {
    const commands = make("commands", { content: "keep me" });
    const temp = make(`commands.${dead}.0a1b2c3d.tmp`);
    const lines: string[] = [];
    assert.deepEqual(removeDeadWritersTemps([commands], 60_000, (line) => lines.push(line)), [temp]);
    assert.equal(existsSync(temp), false);
    assert.equal(readFileSync(commands, "utf8"), "keep me", "the channel file itself is untouched");
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, new RegExp(`removed .*commands\\.${dead}\\.0a1b2c3d\\.tmp: .*pid ${dead}, gone`));
  });

  it("keeps the temp of a live writer, however old (process.pid)", () => {
    const temp = make(`results.${process.pid}.deadbeef.tmp`);
    assert.deepEqual(removeDeadWritersTemps([tmp.file("results")], 60_000), []);
    assert.ok(existsSync(temp));
  });

  it("keeps the temp of a dead writer until it is older than olderThanMs", () => {
    const temp = make(`results.${dead}.deadbeef.tmp`, { fresh: true });
    assert.deepEqual(removeDeadWritersTemps([tmp.file("results")], 60_000), []);
    assert.ok(existsSync(temp));
    utimesSync(temp, new Date(Date.now() - 30_000), new Date(Date.now() - 30_000));
    assert.deepEqual(removeDeadWritersTemps([tmp.file("results")], 60_000), [], "30 s old is not older than 60 s");
    assert.deepEqual(removeDeadWritersTemps([tmp.file("results")], 10_000), [temp]);
  });

  it("removes nothing whose name is not exactly X.<pid>.<hex>.tmp for a given X", () => {
    const names = [
      "commands",
      "commands.tmp",
      `commands.${dead}.tmp`,
      `commands.${dead}.0a1b2c3d`,
      `commands.${dead}.0a1b2c3d.tmp.bak`,
      `commands.${dead}.0A1B2C3D.tmp`, // upper-case hex: no writer of ours makes it
      `commands.${dead}.0a1b2c3.tmp`, // 7 hex digits
      `commands.${dead}.0a1b2c3d9.tmp`, // 9
      `commands.${dead}.xyz12345.tmp`,
      `commands.0.0a1b2c3d.tmp`, // kill(0, 0) is the process group: never a pid
      `commands.0${dead}.0a1b2c3d.tmp`,
      `commands.-${dead}.0a1b2c3d.tmp`,
      `commands.${dead}.${dead}.0a1b2c3d.tmp`,
      `commandsx.${dead}.0a1b2c3d.tmp`,
      `xcommands.${dead}.0a1b2c3d.tmp`,
      `results.${dead}.0a1b2c3d.tmp`, // a sibling of a file not given
      `commands.1.${dead}.0a1b2c3d.tmp`, // channel 1's, not given
      `.commands.${dead}.0a1b2c3d.tmp`,
      `commands.daemon.${dead}.0a1b2c3d.tmp`,
      `commands.lock.${dead}.0a1b2c3d.tmp`,
    ];
    for (const name of names) make(name);
    assert.deepEqual(removeDeadWritersTemps([tmp.file("commands")], 0), []);
    assert.deepEqual(readdirSync(tmp.path).sort(), [...names].sort());
  });

  it("the pattern is per file: channel 1's and the daemon info file's temps when those are given", () => {
    const given = ["commands", "results", "commands.1", "results.1", "commands.daemon"].map((name) => tmp.file(name));
    const temps = ["commands", "results", "commands.1", "results.1", "commands.daemon"].map((name, i) => make(`${name}.${dead}.0000000${i}.tmp`));
    const kept = make(`results.2.${dead}.00000009.tmp`);
    assert.deepEqual(removeDeadWritersTemps(given, 1000).sort(), [...temps].sort());
    assert.ok(existsSync(kept));
  });

  it("never follows nor removes a symbolic link, nor a directory, named like a dead writer's temp", () => {
    const target = make("precious", { content: "precious" });
    const link = tmp.file(`commands.${dead}.11111111.tmp`);
    symlinkSync(target, link);
    lutimesSync(link, HOUR_AGO(), HOUR_AGO());
    const dangling = tmp.file(`commands.${dead}.22222222.tmp`);
    symlinkSync(tmp.file("nowhere"), dangling);
    lutimesSync(dangling, HOUR_AGO(), HOUR_AGO());
    const dir = tmp.file(`commands.${dead}.33333333.tmp`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, "inside"), "x");
    utimesSync(dir, HOUR_AGO(), HOUR_AGO());
    assert.deepEqual(removeDeadWritersTemps([tmp.file("commands")], 1000), []);
    assert.equal(readFileSync(link, "utf8"), "precious");
    assert.equal(readFileSync(target, "utf8"), "precious");
    assert.ok(existsSync(path.join(dir, "inside")));
    assert.deepEqual(readdirSync(tmp.path).sort(), ["commands.*.11111111.tmp", "commands.*.22222222.tmp", "commands.*.33333333.tmp", "precious"].map((n) => n.replace("*", String(dead))).sort());
  });

  it("files in several directories, a missing directory, and paths given twice or relative", () => {
    const other = tmp.file("other");
    mkdirSync(other);
    const a = make(`commands.${dead}.aaaaaaaa.tmp`);
    const b = path.join(other, `results.${dead}.bbbbbbbb.tmp`);
    writeFileSync(b, "");
    utimesSync(b, HOUR_AGO(), HOUR_AGO());
    const relative = path.relative(process.cwd(), tmp.file("commands"));
    const removed = removeDeadWritersTemps([relative, tmp.file("commands"), path.join(other, "results"), tmp.file("missing/commands")], 1000);
    assert.deepEqual(removed.sort(), [a, b].sort());
  });

  it("an empty list removes nothing", () => {
    make(`commands.${dead}.aaaaaaaa.tmp`);
    assert.deepEqual(removeDeadWritersTemps([], 0), []);
    assert.equal(readdirSync(tmp.path).length, 1);
  });
});
