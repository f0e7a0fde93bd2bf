import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { encodeCommandRecord, PLAIN_COMMAND } from "../../src/protocol/command-record";
import { encodeRunning, decodeResults } from "../../src/protocol/result-record";
import { startDaemonProcess, stopDaemonProcess, type DaemonProcess } from "../helpers/daemon-process";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

describe("crashes and recovery", function () {
  this.timeout(60_000);
  const tmp = useTempDir();
  let daemonProcess: DaemonProcess | undefined;
  let daemon: Daemon | undefined;
  const orphans: number[] = [];

  afterEach(async () => {
    await stopDaemonProcess(daemonProcess);
    await daemon?.stop();
    daemonProcess = undefined;
    daemon = undefined;
    for (const pid of orphans.splice(0)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });

  it("fails fast when the daemon is SIGKILLed mid-command, and never runs it again", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemonProcess = await startDaemonProcess(commands, results, 0.5);
    const ran = tmp.file("ran");
    const pending = submitCommand(`echo once >> '${ran}'; echo $$ > '${tmp.file("pgid")}'; sleep 30`, commands, results, 0.5).catch((err: unknown) => err);
    await waitFor("the command to start", () => existsSync(tmp.file("pgid")) && readFileSync(tmp.file("pgid"), "utf8").trim() !== "");
    orphans.push(Number(readFileSync(tmp.file("pgid"), "utf8")));
    const killedAt = performance.now();
    daemonProcess.child.kill("SIGKILL");
    const error = await pending;
    const waited = performance.now() - killedAt;
    assert.equal((error as { code?: string }).code, "DAEMON_DIED", String(error));
    assert.ok(waited < 3000, `the submitter learned within 3 s (took ${Math.round(waited)} ms)`);

    daemonProcess = await startDaemonProcess(commands, results, 0.5);
    assert.equal((await submitCommand("exit 9", commands, results, 0.5)).code, 9);
    assert.equal(readFileSync(ran, "utf8"), "once\n", "the interrupted command did not run again");
  });

  it("recovers a crash between 'running' and 'taken': reports interrupted, runs nothing", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const marker = tmp.file("must-not-run");
    const owner = { id: "crashed-1", pid: process.pid, pidns: null };
    writeFileSync(commands, encodeCommandRecord({ ...owner, command: `touch '${marker}'`, ...PLAIN_COMMAND, legacy: false }));
    writeFileSync(results, encodeRunning({ ...owner, daemon: 999_999, run: "an-earlier-daemon" }));
    daemon = await Daemon.start({ commands, results, sleepTime: 0.2 });
    const recovered = decodeResults(readFileSync(results));
    assert.equal(recovered.kind, "done");
    assert.equal(recovered.status, "interrupted");
    assert.equal(readFileSync(results, "utf8").split("\n")[0], "-1", "a line-1 reader sees -1");
    assert.equal(readFileSync(commands, "utf8"), "");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(existsSync(marker), false);
  });

  it("takes over a lock left by a submitter that was SIGKILLed while holding it", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemon = await Daemon.start({ commands, results, sleepTime: 0.2, stale: 2000 });
    // A real process takes the commands lock the way every client does, then dies holding it.
    const holder = spawn(process.execPath, ["-e", `require(${JSON.stringify(require.resolve("proper-lockfile"))}).lock(${JSON.stringify(commands)}, {realpath: false, stale: 2000}).then(() => { console.log("locked"); setInterval(() => {}, 1000); })`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    holder.kill("SIGKILL");
    const started = performance.now();
    const result = await submitCommand("exit 4", commands, results, 0.2, { stale: 2000 });
    const waited = performance.now() - started;
    assert.equal(result.code, 4);
    assert.ok(waited < 6000, `recovered within the stale time plus a poll (took ${Math.round(waited)} ms)`);
  });

  it("treats a lock whose mtime lies far in the future (clock jumped back) as stale", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemon = await Daemon.start({ commands, results, sleepTime: 0.2, stale: 2000 });
    mkdirSync(`${commands}.lock`);
    const future = new Date(Date.now() + 3_600_000);
    const { utimesSync } = await import("node:fs");
    utimesSync(`${commands}.lock`, future, future);
    assert.equal((await submitCommand("exit 6", commands, results, 0.2, { stale: 2000 })).code, 6);
  });

  it("refuses a second daemon on the same files", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemon = await Daemon.start({ commands, results, sleepTime: 0.5 });
    await assert.rejects(Daemon.start({ commands, results, sleepTime: 0.5 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, "ALREADY_RUNNING");
      assert.match(err.message, new RegExp(`pid ${process.pid}`));
      return true;
    });
    assert.equal((await submitCommand("exit 1", commands, results, 0.5)).code, 1);
  });
});
