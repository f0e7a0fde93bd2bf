import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import type { DaemonActivity } from "../../src/nodes/file-daemon/daemon-activity";
import { execFlow, helper, Inbox, node, OUR_NODES, useTestFiles, waitFor, waitForStatus, type Msg } from "./support";

// What the sidebar's overview says about real commands through a real daemon: each outcome as
// msg and the node's status say it, refusals before the daemon, the 20-result limit, queues, and
// nothing left behind when a node closes. The plugin's routes on the test helper's admin app
// (the helper stubs the permission check: the admin-auth test covers it in a real Node-RED).

const REPO = path.resolve(__dirname, "..", "..", "..");
const SIDEBAR = createRequire(__filename)(path.join(REPO, "nodes", "file-daemon-sidebar.js")) as (RED: never) => void;

interface Ended {
  node: { id: string };
  command: string | null;
  code: number | null;
  signal: string | null;
  error: string | null;
  message: string | null;
  durationMs: number;
  endedAt: number;
}
interface Overview {
  daemons: {
    id: string;
    mode: string;
    state: string;
    daemon: { pid: number; channels: number; features: string[]; fileMode: string; allow: string | null } | null;
    channels: { index: number; busy: boolean }[];
    queues: { node: { id: string }; waiting: number; running: number }[];
    running: { key: string; command: string; node: { id: string }; killRequested: string | null }[];
    recent: Ended[];
    health: { state: string }[];
  }[];
}

/** The helper's supertest agent on its admin app (not in its typings). */
const admin = (): { get(route: string): { expect(status: number): Promise<{ body: unknown }> } } => (helper as unknown as { request(): ReturnType<typeof admin> }).request();

async function overview(): Promise<Overview["daemons"][number]> {
  const response = await admin().get("/file-daemon/overview").expect(200);
  const body = response.body as Overview;
  assert.equal(body.daemons.length, 1);
  return body.daemons[0] as Overview["daemons"][number];
}

describe("sidebar overview: what it says about the exec nodes' commands", function () {
  const test = useTestFiles();

  async function deploy(exec: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<{ out: Inbox; caught: Inbox; send: (msg: Msg) => void }> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1, channels: 2 });
    test.onCleanup(() => daemon.stop());
    const flow = execFlow(test.current, { channels: 2, exec });
    Object.assign(flow[1] as Record<string, unknown>, config);
    await helper.load([...OUR_NODES, SIDEBAR], flow);
    await waitForStatus("exec", "daemon running");
    return { out: new Inbox("out"), caught: new Inbox("caught"), send: (msg) => node("exec").receive(msg) };
  }

  it("lists the daemon as it publishes itself and each outcome as msg says it: exit, failure on non-zero, timeout, kill", async function () {
    const { out, caught, send } = await deploy({ failOnNonZero: false });
    const first = await overview();
    assert.equal(first.id, "daemon");
    assert.equal(first.mode, "external");
    assert.equal(first.state, "running");
    assert.equal(first.daemon?.pid, process.pid); // this test's daemon runs in this process
    assert.deepEqual(first.daemon.features, ["cwd", "env", "stdin", "stream"]);
    assert.deepEqual(first.channels.map((channel) => channel.busy), [false, false]);

    send({ payload: "exit 3" });
    assert.equal((await out.nth(0)).payload, 3);
    send({ payload: "sleep 5", timeout: 0.3 });
    await caught.nth(0);
    send({ payload: "sleep 30" });
    const running = await waitFor("sleep 30 running", async () => (await overview()).running[0]);
    assert.equal(running.command, "sleep 30");
    assert.equal(running.node.id, "exec");
    assert.equal((await overview()).channels.filter((channel) => channel.busy).length, 1);
    send({ kill: "SIGINT" });
    const killed = await caught.nth(1);
    assert.equal((killed.error as { code?: string }).code, "KILLED");

    const recent = (await overview()).recent;
    assert.deepEqual(
      recent.map(({ command, code, signal, error }) => ({ command, code, signal, error })),
      [
        { command: "sleep 30", code: null, signal: "SIGINT", error: "KILLED" },
        { command: "sleep 5", code: null, signal: "SIGTERM", error: "TIMEOUT" },
        { command: "exit 3", code: 3, signal: null, error: null },
      ],
    );
    assert.ok(recent.every((ended) => ended.node.id === "exec" && ended.durationMs > 0 && ended.endedAt <= Date.now()));
    assert.deepEqual((await overview()).running, []);
  });

  it("records a refusal before the daemon (not allowed) with duration 0, and a non-zero exit that the node fails on", async function () {
    const { caught, send } = await deploy({ failOnNonZero: true }, { allowlist: "exit *", version: 2 });
    send({ payload: "exit 2" });
    assert.equal(((await caught.nth(0)).error as { code?: string }).code, "NON_ZERO_EXIT");
    send({ payload: "rm -rf /tmp/nothing" });
    assert.equal(((await caught.nth(1)).error as { code?: string }).code, "NOT_ALLOWED");
    const [refused, nonZero] = (await overview()).recent;
    assert.deepEqual({ command: refused?.command, error: refused?.error, durationMs: refused?.durationMs }, { command: "rm -rf /tmp/nothing", error: "NOT_ALLOWED", durationMs: 0 });
    assert.deepEqual({ command: nonZero?.command, code: nonZero?.code, error: nonZero?.error }, { command: "exit 2", code: 2, error: "NON_ZERO_EXIT" });
  });

  it("records a daemon that cannot start as the message says it: the start problem and its fix, not 'no daemon'", async function () {
    const missing = test.current.file("no-such-dir");
    const flow = execFlow({ ...test.current, commands: path.join(missing, "commands"), results: path.join(missing, "results") }, { mode: "managed" });
    await helper.load([...OUR_NODES, SIDEBAR], flow);
    await waitForStatus("exec", "no directory");
    const caught = new Inbox("caught");
    node("exec").receive({ payload: "true" });
    const error = (await caught.nth(0)).error as { code?: string; message?: string };
    assert.equal(error.code, "NO_DIRECTORY");
    const [ended] = (await overview()).recent;
    assert.deepEqual({ error: ended?.error, message: ended?.message }, { error: "NO_DIRECTORY", message: error.message?.replace(/^FileDaemonError: /, "") });
  });

  it("lists a config node inside a subflow as each instance's own (Kill reaches it), and a disabled one as disabled", async function () {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1, channels: 1 });
    test.onCleanup(() => daemon.stop());
    const flow = [
      { id: "tab", type: "tab", label: "test" },
      { id: "sf", type: "subflow", name: "runner", in: [{ x: 50, y: 30, wires: [{ id: "sfExec" }] }], out: [] },
      { id: "sfDaemon", type: "file-daemon", z: "sf", name: "in the subflow", commandsFile: test.current.commands, resultsFile: test.current.results, sleepTime: 0.1, mode: "external", channels: 1 },
      { id: "sfExec", type: "file-daemon-exec", z: "sf", x: 200, y: 30, daemon: "sfDaemon", command: "", appendPayload: false, timeout: 0, capture: false, failOnNonZero: false, wires: [[]] },
      { id: "instance", type: "subflow:sf", z: "tab", x: 100, y: 100, wires: [] },
      { id: "off", type: "file-daemon", d: true, name: "switched off", commandsFile: test.current.file("off-c"), resultsFile: test.current.file("off-r"), sleepTime: 0.1, mode: "external", channels: 1 },
    ];
    await helper.load([...OUR_NODES, SIDEBAR], flow);
    const instance = node("instance") as unknown as { receive(msg: Msg): void };
    instance.receive({ payload: "sleep 30" });
    const list = async () => ((await admin().get("/file-daemon/overview").expect(200)).body as Overview).daemons;
    const running = await waitFor("the subflow's sleep 30 running", async () => (await list()).find((entry) => entry.running.length > 0));
    assert.notEqual(running.id, "sfDaemon", "the instance's config node has an id of its own");
    assert.equal(running.state, "running");
    assert.deepEqual((await list()).map((entry) => entry.state).sort(), ["disabled", "running"]);
    const kill = await (admin() as unknown as { post(route: string): { expect(status: number): Promise<{ body: unknown }> } }).post(`/file-daemon/kill/${running.id}/${running.running[0]?.key ?? ""}`).expect(200);
    assert.deepEqual(kill.body, { killed: running.running[0]?.key, signal: "SIGTERM" });
    await waitFor("it ended as killed", async () => (await list()).find((entry) => entry.id === running.id)?.recent[0]?.error === "KILLED");
  });

  it("cuts a long command line to 2000 characters, with its length", async function () {
    const { out, send } = await deploy();
    const long = `: ${"x".repeat(3000)}; exit 5`;
    send({ payload: long });
    assert.equal((await out.nth(0)).payload, 5);
    assert.equal((await overview()).recent[0]?.command, `${long.slice(0, 2000)}… (${long.length} characters)`);
  });

  it("shows the kill msg.kill asked for, and refuses a second one from the sidebar with 409 naming it", async function () {
    const { caught, send } = await deploy();
    // The shell and its sleep ignore SIGINT: the command goes on after the kill was asked for
    // (until the daemon's grace ends and it sends SIGKILL).
    send({ payload: "trap '' INT; sleep 5" });
    const running = await waitFor("the command running", async () => (await overview()).running[0]);
    assert.equal(running.killRequested, null);
    send({ kill: "SIGINT" });
    await waitFor("the kill shown as asked for", async () => (await overview()).running[0]?.killRequested === "SIGINT");
    const agent = admin() as unknown as { post(route: string): { expect(status: number): Promise<{ body: unknown }> } };
    const refused = await agent.post(`/file-daemon/kill/daemon/${running.key}`).expect(409);
    assert.equal((refused.body as { signal: string }).signal, "SIGINT");
    assert.equal(((await caught.nth(0)).error as { code?: string }).code, "KILLED");
  });

  it("keeps the last 20 results, newest first, and shows the node's queue while messages wait", async function () {
    const { out, send } = await deploy();
    for (let i = 0; i < 25; i++) send({ payload: `exit ${i % 7}; : ${i}` });
    // Two channels: two at the daemon, the rest wait in the node.
    const queued = (await overview()).queues[0];
    assert.ok(queued !== undefined && queued.running === 2 && queued.waiting === 23, `queue: ${JSON.stringify(queued)}`);
    await out.nth(24);
    const { recent, queues } = await overview();
    assert.equal(recent.length, 20);
    // Two channels end in either order; newest first, 20 different ones, the last sent among the newest.
    assert.ok(recent.every((ended, i) => i === 0 || ended.endedAt <= (recent[i - 1] as Ended).endedAt));
    assert.equal(new Set(recent.map((ended) => ended.command)).size, 20);
    assert.ok(recent.slice(0, 3).some((ended) => ended.command === "exit 3; : 24"), recent.map((ended) => ended.command).join(" | "));
    assert.deepEqual(queues.map(({ waiting, running }) => ({ waiting, running })), [{ waiting: 0, running: 0 }]);
  });

  it("closing the flows ends the node's running command and stops its queue report: nothing is left in the activity", async function () {
    const { send } = await deploy();
    send({ payload: "sleep 30" });
    await waitFor("sleep 30 running", async () => (await overview()).running.length === 1);
    const activity = (node("daemon") as unknown as { fileDaemon: { activity: DaemonActivity } }).fileDaemon.activity;
    await helper.unload();
    assert.deepEqual(activity.runningCommands(), []);
    assert.deepEqual(activity.queueDepths(), []);
    assert.equal(activity.recentResults()[0]?.error, "KILLED");
    // As the message said it: closed, and why it ended.
    assert.match(activity.recentResults()[0]?.message ?? "", /^the node was closed .*its running command was killed$/);
    // The flows are stopped: the config node is listed as not running, with nothing of its own.
    const stopped = (await admin().get("/file-daemon/overview").expect(200)).body as Overview;
    assert.deepEqual(stopped.daemons.map(({ id, running, queues }) => ({ id, running, queues })), [{ id: "daemon", running: [], queues: [] }]);
    assert.match((stopped.daemons[0] as unknown as { error: string }).error, /not running/);
  });
});
