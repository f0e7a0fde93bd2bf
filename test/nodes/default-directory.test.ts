import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { DEFAULT_DIRECTORY_SETTING } from "../../src/nodes/file-daemon-exec/exec-policy";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { execFlow, helper, Inbox, lastStatus, node, OUR_NODES, statuses, useTestFiles, waitFor, waitForStatus, type FlowOptions, type Msg } from "./support";

const UID = process.getuid?.() ?? 0;
const NOBODY = 65534;

function errorOf(msg: Msg): { code?: string; message: string } {
  return msg.error as { code?: string; message: string };
}

function configNodeLog(): string[] {
  const spy = helper.log() as { getCalls(): { args: [{ type?: string; msg?: unknown }] }[] };
  return spy
    .getCalls()
    .map((call) => call.args[0])
    .filter((entry) => entry.type === "file-daemon")
    .map((entry) => String(entry.msg));
}

function mode(file: string): string {
  return (lstatSync(file).mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Config nodes with empty paths, on a private XDG_RUNTIME_DIR per test (this process's
 * environment, which Node-RED under the test helper shares): the default directory is then
 * `<it>/file-daemon`, never the real /dev/shm/file-daemon-<uid> of this machine.
 */
describe("file-daemon config node with empty paths: the default directory", function () {
  const test = useTestFiles();
  const saved = process.env.XDG_RUNTIME_DIR;
  let runtimeDir = "";
  let dir = "";
  const files = () => daemonFiles(path.join(dir, "commands"), path.join(dir, "results"));
  const flow = (options: FlowOptions = {}) => execFlow({ ...test.current, commands: "", results: "" }, { mode: "managed", ...options });

  beforeEach(function () {
    runtimeDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-xdg-")); // 0700, ours: a valid XDG_RUNTIME_DIR
    dir = path.join(runtimeDir, "file-daemon");
    process.env.XDG_RUNTIME_DIR = runtimeDir;
    // Registered after useTestFiles' hook, so run before it: daemons stopped, then the directory removed.
    test.onCleanup(async () => {
      await stopLiveDaemon(files());
      if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
      else process.env.XDG_RUNTIME_DIR = saved;
      rmSync(runtimeDir, { recursive: true, force: true });
    });
  });

  it("managed: makes $XDG_RUNTIME_DIR/file-daemon 0700, starts its daemon on commands and results there, and runs messages", async function () {
    assert.equal(existsSync(dir), false);
    await helper.load([...OUR_NODES], flow());
    await waitForStatus("exec", "daemon running");
    assert.ok(lstatSync(dir).isDirectory());
    assert.equal(mode(dir), "0700");
    assert.equal(lstatSync(dir).uid, UID);
    const live = readLiveDaemon(files());
    assert.ok(live !== null, "no daemon serves the default files");
    assert.equal(live.commands, path.join(dir, "commands"));
    assert.equal(live.results, path.join(dir, "results"));
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 3" });
    assert.equal((await out.nth(0)).payload, 3);
    assert.ok(existsSync(path.join(dir, "commands.log")), "the daemon logs beside its files");
  });

  it("external: makes the directory too, shows daemon down, and runs messages once someone starts a daemon on the default files", async function () {
    await helper.load([...OUR_NODES], flow({ mode: "external" }));
    await waitForStatus("exec", "daemon down");
    assert.equal(mode(dir), "0700");
    const daemon = await Daemon.start({ commands: files().commands, results: files().results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    await waitForStatus("exec", "daemon running");
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);
  });

  it("the admin's fileDaemonDefaultDirectory wins over XDG_RUNTIME_DIR", async function () {
    const admin = test.current.file("admin");
    helper.settings({ [DEFAULT_DIRECTORY_SETTING]: admin });
    test.onCleanup(() => helper.settings({}));
    const adminFiles = daemonFiles(path.join(admin, "commands"), path.join(admin, "results"));
    test.onCleanup(() => stopLiveDaemon(adminFiles));
    await helper.load([...OUR_NODES], flow());
    await waitForStatus("exec", "daemon running");
    assert.equal(mode(admin), "0700");
    assert.ok(readLiveDaemon(adminFiles) !== null);
    assert.equal(existsSync(dir), false, "nothing made in XDG_RUNTIME_DIR");
  });

  it("one path empty and the other set: the config node refuses to start, and says to give both or neither", async function () {
    const flowNodes = execFlow({ ...test.current, results: "" }, { mode: "managed" });
    await helper.load([...OUR_NODES], flowNodes);
    await waitForStatus("exec", "no daemon");
    assert.ok(configNodeLog().some((line) => line.includes("the results file path is empty: give both files, or leave both empty to use the default directory")), configNodeLog().join("\n"));
    assert.equal(existsSync(dir), false);
  });

  /**
   * What someone else may have left at the predictable name: each is refused with the status
   * `unsafe dir`, messages fail at once with UNSAFE_FILES naming the directory, no daemon is
   * started and nothing is written there; once it is fixed the daemon starts without a redeploy.
   */
  const prepared: { what: string; prepare: () => string; reason: RegExp; fix: () => void }[] = [
    {
      what: "a symbolic link to a directory",
      prepare: () => {
        const target = test.current.file("target");
        mkdirSync(target, { mode: 0o700 });
        symlinkSync(target, dir);
        return target;
      },
      reason: /is a symbolic link \(to .*\), not a directory of its own/,
      fix: () => unlinkSync(dir),
    },
    {
      what: "a directory that belongs to nobody",
      prepare: () => {
        mkdirSync(dir, { mode: 0o700 });
        chownSync(dir, NOBODY, NOBODY);
        return dir;
      },
      reason: new RegExp(`belongs to uid ${NOBODY} \\(nobody\\), not to uid ${UID}`),
      fix: () => rmSync(dir, { recursive: true }),
    },
    {
      what: "a directory of mode 0777",
      prepare: () => {
        mkdirSync(dir);
        chmodSync(dir, 0o777);
        return dir;
      },
      reason: /is writable by every user \(mode 0777\): others could replace the commands file; run chmod 700 /,
      fix: () => chmodSync(dir, 0o700),
    },
  ];
  for (const { what, prepare, reason, fix } of prepared) {
    it(`managed, ${what} in its place: 'unsafe dir', messages fail with UNSAFE_FILES, no daemon, nothing written; once fixed it starts without a redeploy`, async function () {
      if (what.includes("nobody") && UID !== 0) this.skip();
      const lookAt = prepare();
      await helper.load([...OUR_NODES], flow());
      await waitForStatus("exec", "unsafe dir");
      await waitForStatus("daemon", "unsafe dir");
      const logged = await waitFor("the config node's error", () => configNodeLog().find((line) => line.startsWith("refusing the default directory")));
      assert.match(logged, reason);
      assert.match(logged, new RegExp(`^refusing the default directory: ${dir} `));
      assert.match(logged, /Nothing was written there and no daemon uses it\. The directory is tried again every 1 s; the daemon starts once it is usable$/);

      const caught = new Inbox("caught");
      const started = performance.now();
      node("exec").receive({ payload: `touch ${test.current.file("ran")}` });
      const failed = await caught.nth(0, 3000);
      assert.ok(performance.now() - started < 2000, "failed at once");
      assert.equal(errorOf(failed).code, "UNSAFE_FILES");
      assert.match(errorOf(failed).message, reason);
      assert.equal(lastStatus("exec"), "unsafe dir");
      // Give a retry or two the chance to do what it must not.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(readdirSync(lookAt), [], `something was written into ${lookAt}`);
      assert.equal(readLiveDaemon(files()), null, "a daemon serves the refused directory");
      assert.equal(existsSync(test.current.file("ran")), false);
      assert.equal(statuses("exec").filter((status) => status.text === "daemon running").length, 0);

      fix();
      await waitForStatus("exec", "daemon running", 10_000);
      await waitForStatus("daemon", "daemon running");
      assert.equal(lstatSync(dir).isDirectory(), true);
      assert.equal(lstatSync(dir).uid, UID);
      assert.equal(mode(dir), "0700");
      const out = new Inbox("out");
      node("exec").receive({ payload: "exit 4" });
      assert.equal((await out.nth(0)).payload, 4);
      assert.ok(configNodeLog().some((line) => line === `the default directory ${dir} is usable now`));
    });
  }

  it("external, a directory every user may write (sticky, which the daemon itself accepts) served by someone's daemon: 'unsafe dir', never 'daemon running', and the daemon is sent nothing", async function () {
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    const theirs = await Daemon.start({ commands: files().commands, results: files().results, sleepTime: 0.1 });
    test.onCleanup(() => theirs.stop());
    await helper.load([...OUR_NODES], flow({ mode: "external" }));
    await waitForStatus("exec", "unsafe dir");
    const caught = new Inbox("caught");
    node("exec").receive({ payload: `touch ${test.current.file("ran")}` });
    const failed = await caught.nth(0, 3000);
    assert.equal(errorOf(failed).code, "UNSAFE_FILES");
    assert.match(errorOf(failed).message, /is writable by every user \(mode 1777\)/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(existsSync(test.current.file("ran")), false, "the command reached the daemon");
    assert.equal(statuses("exec").filter((status) => status.text === "daemon running").length, 0);
  });
});
