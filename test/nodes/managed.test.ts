import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Daemon } from "../../src/daemon/daemon";
import { isGone, stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { type DaemonInfo } from "../../src/protocol/daemon-info";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { readOrEmpty } from "../helpers/small";
import { execFlow, helper, Inbox, lastStatus, node, OUR_NODES, statuses, useTestFiles, waitFor, waitForStatus, type FlowNode, type TestFiles } from "./support";

function liveDaemon(files: TestFiles): Promise<DaemonInfo> {
  return waitFor(`a daemon serving ${files.commands}`, () => readLiveDaemon(files.daemon));
}

function errorText(msg: Record<string, unknown>): string {
  return String((msg.error as { message: unknown }).message);
}

/** Lines that Node-RED logged for the config node, e.g. its "gave up" error. */
function configNodeLog(): string[] {
  const spy = helper.log() as { getCalls(): { args: [{ type?: string; msg?: unknown }] }[] };
  return spy
    .getCalls()
    .map((call) => call.args[0])
    .filter((entry) => entry.type === "file-daemon")
    .map((entry) => String(entry.msg));
}

describe("file-daemon config node, managed mode", function () {
  const test = useTestFiles();

  it("starts one daemon on deploy, restarts it after it is killed, and the next message works", async function () {
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "daemon running");
    const first = await liveDaemon(test.current);
    assert.notEqual(first.pid, process.pid, "the daemon is a process of its own");
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);

    process.kill(first.pid, "SIGKILL");
    const second = await waitFor("a new daemon", () => {
      const live = readLiveDaemon(test.current.daemon);
      return live !== null && live.pid !== first.pid ? live : null;
    });
    await waitForStatus("exec", "daemon running");
    assert.ok(statuses("exec").some((status) => status.text === "daemon restarting"));
    node("exec").receive({ payload: "exit 5" });
    assert.equal((await out.nth(1)).payload, 5);
    assert.ok(isGone(first.pid, first.startTime));
    assert.equal(readLiveDaemon(test.current.daemon)?.pid, second.pid);
  });

  it("after a redeploy adopts the running daemon instead of starting a second, and restarts it if it dies", async function () {
    const flow = execFlow(test.current, { mode: "managed" });
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
    const first = await liveDaemon(test.current);

    await helper.setFlows(flow.map((n) => (n.id === "exec" ? { ...n, name: "redeployed" } : n)), "full");
    await waitForStatus("exec", "daemon running");
    assert.equal(readLiveDaemon(test.current.daemon)?.pid, first.pid, "the same daemon serves after the redeploy");
    assert.ok(configNodeLog().some((line) => line.includes(`adopted the daemon already serving ${test.current.commands} (pid ${first.pid})`)));
    const serving = readFileSync(`${test.current.commands}.log`, "utf8").match(/ serving /g) ?? [];
    assert.equal(serving.length, 1, "only one daemon was ever started");
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);

    // An adopted daemon is watched by polling: its death is noticed and it is replaced.
    process.kill(first.pid, "SIGKILL");
    await waitFor("a replacement daemon", () => {
      const live = readLiveDaemon(test.current.daemon);
      return live !== null && live.pid !== first.pid;
    });
    node("exec").receive({ payload: "exit 6" });
    assert.equal((await out.nth(1)).payload, 6);
  });

  it("stops its daemon when the config node is deleted", async function () {
    const flow = execFlow(test.current, { mode: "managed" });
    await helper.load([...OUR_NODES], flow);
    const daemon = await liveDaemon(test.current);
    await helper.setFlows(
      flow.filter((n) => n.id !== "daemon" && n.id !== "exec"),
      "full",
    );
    await waitFor(`daemon pid ${daemon.pid} to exit`, () => isGone(daemon.pid, daemon.startTime), 15_000);
    assert.equal(readLiveDaemon(test.current.daemon), null);
  });

  it("after a redeploy with other files, stops the daemon that no config node uses any more", async function () {
    const flow = execFlow(test.current, { mode: "managed" });
    await helper.load([...OUR_NODES], flow);
    const old = await liveDaemon(test.current);
    const commands = test.current.file("other-commands");
    const results = test.current.file("other-results");
    test.onCleanup(() => stopLiveDaemon(daemonFiles(commands, results)));
    await helper.setFlows(
      flow.map((n): FlowNode => (n.id === "daemon" ? { ...n, commandsFile: commands, resultsFile: results } : n)),
      "full",
    );
    await waitFor(`the orphaned daemon pid ${old.pid} to exit`, () => isGone(old.pid, old.startTime), 15_000);
    const replacement = await waitFor("a daemon on the new files", () => readLiveDaemon(daemonFiles(commands, results)));
    assert.notEqual(replacement.pid, old.pid);
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);
  });

  it("after a redeploy with another channel count, replaces the daemon", async function () {
    const flow = execFlow(test.current, { mode: "managed", channels: 1 });
    await helper.load([...OUR_NODES], flow);
    const old = await liveDaemon(test.current);
    await helper.setFlows(
      flow.map((n): FlowNode => (n.id === "daemon" ? { ...n, channels: 2 } : n)),
      "full",
    );
    const replacement = await waitFor("a daemon with 2 channels", () => {
      const live = readLiveDaemon(test.current.daemon);
      return live?.channels === 2 ? live : null;
    });
    assert.notEqual(replacement.pid, old.pid);
    assert.ok(isGone(old.pid, old.startTime));
  });

  it("after a redeploy with another results file (same commands file), a new daemon serves it and messages run through it", async function () {
    const flow = execFlow(test.current, { mode: "managed" });
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
    const old = await liveDaemon(test.current);
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 1" });
    assert.equal((await out.nth(0)).payload, 1);
    const oldResults = readFileSync(test.current.results, "utf8");

    const results = test.current.file("other-results");
    await helper.setFlows(
      flow.map((n): FlowNode => (n.id === "daemon" ? { ...n, resultsFile: results } : n)),
      "full",
    );
    const replacement = await waitFor("a daemon serving the new results file", () => {
      const live = readLiveDaemon(test.current.daemon);
      return live?.results === results ? live : null;
    });
    assert.notEqual(replacement.pid, old.pid);
    assert.ok(isGone(old.pid, old.startTime));
    await waitForStatus("exec", "daemon running");
    const again = new Inbox("out");
    // The daemon marks the command running in the results file while it runs (the submitter
    // clears the result once it has it): watch for that in the new file.
    node("exec").receive({ payload: "sleep 1; exit 3" });
    await waitFor("the command's record in the new results file", () => readOrEmpty(results).includes('"running"'), 3000);
    assert.equal((await again.nth(0)).payload, 3);
    assert.equal(readFileSync(test.current.results, "utf8"), oldResults, "the old results file was left alone");
  });

  describe("close finishes within Node-RED's 15 s", function () {
    /** Deletes the config node (and its exec node); resolves to how long Node-RED took. */
    async function timedDelete(flow: FlowNode[]): Promise<number> {
      const started = performance.now();
      await helper.setFlows(
        flow.filter((n) => n.id !== "daemon" && n.id !== "exec"),
        "full",
      );
      return performance.now() - started;
    }

    function ignoreSigterm(daemon: DaemonInfo): void {
      // A stopped process leaves SIGTERM pending; SIGKILL still ends it.
      process.kill(daemon.pid, "SIGSTOP");
      test.onCleanup(() => {
        for (const signal of ["SIGCONT", "SIGKILL"] as const) {
          try {
            process.kill(daemon.pid, signal);
          } catch {
            // Gone, as it should be.
          }
        }
      });
    }

    it("when deleted while its daemon ignores SIGTERM", async function () {
      const flow = execFlow(test.current, { mode: "managed" });
      await helper.load([...OUR_NODES], flow);
      const daemon = await liveDaemon(test.current);
      ignoreSigterm(daemon);
      const took = await timedDelete(flow);
      assert.ok(took < 13_000, `close took ${Math.round(took)} ms`);
      assert.equal(
        configNodeLog().find((line) => /timed out/i.test(line)),
        undefined,
      );
      assert.ok(isGone(daemon.pid, daemon.startTime));
    });

    it("when deleted while it replaces a daemon that ignores SIGTERM (redeployed with other channels)", async function () {
      const flow = execFlow(test.current, { mode: "managed", channels: 1 });
      await helper.load([...OUR_NODES], flow);
      const old = await liveDaemon(test.current);
      ignoreSigterm(old);
      const redeployed = flow.map((n): FlowNode => (n.id === "daemon" ? { ...n, channels: 2 } : n));
      await helper.setFlows(redeployed, "full");
      await waitFor("the new config node to start replacing the daemon", () => configNodeLog().some((line) => line.includes(`the daemon pid ${old.pid} serves`)));
      const took = await timedDelete(redeployed);
      assert.ok(took < 13_000, `close took ${Math.round(took)} ms`);
      assert.equal(
        configNodeLog().find((line) => /timed out/i.test(line)),
        undefined,
      );
      assert.ok(isGone(old.pid, old.startTime));
      await waitFor("no daemon serving", () => readLiveDaemon(test.current.daemon) === null, 2000);
    });
  });

  it("a commands file every user may write: 'unsafe files', messages fail at once saying chmod o-w; after chmod 600 it starts without a redeploy", async function () {
    // The daemon refuses such a file at every start: after 5 starts the supervisor stops
    // starting it and waits for the files to change.
    writeFileSync(test.current.commands, "");
    chmodSync(test.current.commands, 0o666);
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "unsafe files", 20_000);
    await waitForStatus("daemon", "unsafe files");
    const gaveUp = await waitFor("the gave-up line", () => configNodeLog().find((line) => line.includes("gave up")), 20_000);
    assert.match(gaveUp, /died 5 times in a row within 10 s of starting/);
    assert.match(gaveUp, /writable by every user/);
    assert.match(gaveUp, /the daemon is started again as soon as .* or its files change/);
    assert.equal(statuses("exec").filter((status) => status.text === "daemon restarting").length, 0, "the cause is shown while it restarts");

    const caught = new Inbox("caught");
    const started = performance.now();
    node("exec").receive({ payload: "true" });
    const failed = await caught.nth(0, 3000);
    assert.ok(performance.now() - started < 2000, "failed at once");
    assert.equal((failed.error as { code: string }).code, "UNSAFE_FILES");
    assert.match(errorText(failed), new RegExp(`refusing to serve unsafe files: ${test.current.commands} is writable by every user \\(mode 0666\\); run: chmod o-w ${test.current.commands}`));
    assert.equal(lastStatus("exec"), "unsafe files");

    chmodSync(test.current.commands, 0o600);
    await waitForStatus("exec", "daemon running", 10_000);
    await waitForStatus("daemon", "daemon running");
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 4" });
    assert.equal((await out.nth(0)).payload, 4);
  });

  it("a missing directory: 'no directory', no daemon started, messages fail with NO_DIRECTORY and the mkdir fix; after mkdir it starts and the next message works", async function () {
    const dir = test.current.file("not-yet");
    const files = { ...test.current, commands: `${dir}/commands`, results: `${dir}/results` };
    test.onCleanup(() => stopLiveDaemon(daemonFiles(files.commands, files.results)));
    await helper.load([...OUR_NODES], execFlow(files, { mode: "managed" }));
    await waitForStatus("exec", "no directory");
    await waitForStatus("daemon", "no directory");
    const logged = await waitFor("the config node's error", () => configNodeLog().find((line) => line.includes("does not exist")));
    assert.equal(logged, `the directory ${dir} does not exist: create it with mkdir -m 700 ${dir}; the daemon is started again as soon as ${dir} or its files change`);
    assert.equal(configNodeLog().find((line) => /ENOENT|gave up|restarting/.test(line)), undefined, configNodeLog().join("\n"));

    const caught = new Inbox("caught");
    node("exec").receive({ payload: "true", topic: "early" });
    const failed = await caught.nth(0, 3000);
    assert.equal(failed.topic, "early");
    assert.equal((failed.error as { code: string }).code, "NO_DIRECTORY");
    assert.match(errorText(failed), new RegExp(`the directory ${dir} does not exist: create it with mkdir -m 700 ${dir}$`));
    assert.equal(lastStatus("exec"), "no directory");

    mkdirSync(dir, { mode: 0o700 });
    await waitForStatus("exec", "daemon running", 10_000);
    await waitForStatus("daemon", "daemon running");
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 3" });
    assert.equal((await out.nth(0)).payload, 3);
    assert.equal(existsSync(`${dir}/commands.log`), true, "the daemon's log is in the new directory");
  });

  it("a directory every user may write (0777, no sticky bit): 'unsafe dir', messages fail saying chmod o-w DIR; after chmod 700 it starts without a redeploy", async function () {
    const dir = test.current.dir;
    chmodSync(dir, 0o777);
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "unsafe dir", 10_000);
    await waitForStatus("daemon", "unsafe dir");
    const caught = new Inbox("caught");
    node("exec").receive({ payload: "true" });
    const failed = await caught.nth(0, 3000);
    assert.equal((failed.error as { code: string }).code, "UNSAFE_FILES");
    assert.match(errorText(failed), new RegExp(`${dir} is writable by every user \\(mode 0777\\); use a private directory or run: chmod o-w ${dir} \\[UNSAFE_FILES\\]$`));
    // Let it stop starting the daemon first: the fix is noticed while it only watches.
    await waitFor("the supervisor to wait for a fix", () => configNodeLog().some((line) => line.includes("the daemon is started again as soon as")), 20_000);

    chmodSync(dir, 0o700);
    await waitForStatus("exec", "daemon running", 10_000);
    const out = new Inbox("out");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);
  });

  it("gives up after 5 fast crashes of unknown cause: 'daemon failed', a log line that says to redeploy, and messages fail at once", async function () {
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    const killed: number[] = [];
    await waitFor("5 daemons killed right after they started", () => {
      const live = readLiveDaemon(test.current.daemon);
      if (live !== null && !killed.includes(live.pid)) {
        process.kill(live.pid, "SIGKILL");
        killed.push(live.pid);
      }
      return killed.length >= 5;
    }, 20_000);
    await waitForStatus("exec", "daemon failed", 10_000);
    const gaveUp = configNodeLog().find((line) => line.includes("gave up"));
    assert.ok(gaveUp, configNodeLog().join("\n"));
    assert.match(gaveUp, /died 5 times in a row within 10 s of starting.*Fix the cause, then redeploy to try again$/);

    const caught = new Inbox("caught");
    node("exec").receive({ payload: "true" });
    const failed = await caught.nth(0, 3000);
    assert.match(errorText(failed), /no file-daemon served/);
    assert.equal((failed.error as { code: string }).code, "DAEMON_NOT_RUNNING");
    await waitForStatus("exec", "daemon down");
  });
});

describe("file-daemon config node, external mode", function () {
  const test = useTestFiles();

  it("shows daemon down, fails messages with a Catch, then runs them once someone starts the daemon", async function () {
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "external" }));
    await waitForStatus("exec", "daemon down");
    const caught = new Inbox("caught");
    const out = new Inbox("out");
    node("exec").receive({ payload: "true", topic: "too early" });
    const failed = await caught.nth(0);
    assert.equal(failed.topic, "too early");
    assert.equal((failed.error as { code: string }).code, "DAEMON_NOT_RUNNING");
    assert.equal(readLiveDaemon(test.current.daemon), null, "external mode never starts a daemon");

    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    await waitForStatus("exec", "daemon running");
    node("exec").receive({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);

    await daemon.stop();
    await waitForStatus("exec", "daemon down");
  });
});
