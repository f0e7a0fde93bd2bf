// Through Node-RED (node-red-node-test-helper) and a real daemon: redeploy and stop while
// commands run and wait, a managed daemon killed mid-command, every payload type in plain and
// append mode, random payloads end to end, and the config node's allowlist.
import assert from "node:assert/strict";
import fs, { existsSync, readFileSync } from "node:fs";
import { Daemon } from "../../src/daemon/daemon";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { execFlow, helper, Inbox, lastStatus, node, OUR_NODES, useTestFiles, waitFor, waitForStatus, type FlowNode, type FlowOptions, type Msg } from "../nodes/support";
import { delay, hostilePayload, random, readOrEmpty } from "./support";

type TestNode = ReturnType<typeof node>;

/** The errors a node reported with done(err) (the helper spies on node.error). */
function reportedErrors(target: TestNode): string[] {
  const spy = target.error as { getCalls(): { thisValue: unknown; args: [unknown] }[] };
  return spy
    .getCalls()
    .filter((call) => call.thisValue === target)
    .map((call) => String(call.args[0]));
}

/** msg.error as a Catch node sees it; Node-RED puts the error's name before its message. */
function errorOf(msg: Msg): { message: string; code?: string } {
  const error = msg.error as { message: string; code?: string };
  return { ...error, message: error.message.replace(/^\w*Error: /, "") };
}

function lines(file: string): string[] {
  return readOrEmpty(file).split("\n").filter((line) => line !== "");
}

describe("hardening: Node-RED redeploy and stop", function () {
  this.timeout(30_000);
  const test = useTestFiles();

  /**
   * The defined outcome of a close (redeploy or stop) for one exec node: its running command is
   * killed (error KILLED, it ran once and no further), its waiting messages end with
   * QUEUE_CLOSED and never run, later or ever. The managed daemon keeps running.
   */
  async function runAndQueue(label: string, log: string): Promise<TestNode> {
    const exec = node("exec");
    exec.receive({ payload: `echo start-${label} >> ${log}; sleep 5; echo end-${label} >> ${log}` });
    await waitFor("the first command to start", () => lines(log).includes(`start-${label}`));
    for (let i = 1; i <= 3; i++) exec.receive({ payload: `echo queued-${label}-${i} >> ${log}` });
    await waitForStatus("exec", "queued 3");
    return exec;
  }

  async function checkClosed(exec: TestNode, label: string, log: string): Promise<void> {
    const errors = await waitFor("all 4 messages to end", () => {
      const reported = reportedErrors(exec);
      return reported.length >= 4 ? reported : null;
    });
    assert.equal(errors.length, 4, errors.join("\n"));
    assert.equal(errors.filter((line) => /the node was closed \(redeploy or Node-RED stopping\); its running command was killed/.test(line)).length, 1, errors.join("\n"));
    assert.equal(errors.filter((line) => /the node was closed \(redeploy or Node-RED stopping\); the command was not run/.test(line)).length, 3, errors.join("\n"));
    await delay(500);
    const ran = lines(log).filter((line) => line.includes(label));
    assert.deepEqual(ran, [`start-${label}`], "the running command ran once and was stopped; the queued ones never ran");
  }

  it("a redeploy kills the running command, ends the queued ones unrun, keeps the daemon; the next message runs once", async function () {
    const log = test.current.file("ran");
    const flow = execFlow(test.current, { mode: "managed" });
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
    const daemon = await waitFor("the managed daemon", () => readLiveDaemon(test.current.daemon));
    const exec = await runAndQueue("a", log);

    await helper.setFlows(flow.map((n): FlowNode => (n.id === "exec" ? { ...n, name: "redeployed" } : n)), "full");
    await checkClosed(exec, "a", log);
    await waitForStatus("exec", "daemon running");
    assert.equal(readLiveDaemon(test.current.daemon)?.pid, daemon.pid, "the daemon survived the redeploy");
    const out = new Inbox("out");
    node("exec").receive({ payload: `echo after >> ${log}` });
    assert.equal((await out.nth(0)).payload, 0);
    assert.equal(lines(log).filter((line) => line === "after").length, 1);
  });

  it("Node-RED stopping does the same: nothing it queued runs later", async function () {
    const log = test.current.file("ran");
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "daemon running");
    const exec = await runAndQueue("b", log);
    // What Node-RED does when it stops: every flow is stopped (its nodes closed, not removed).
    await helper.clearFlows();
    await checkClosed(exec, "b", log);
    const results = readOrEmpty(test.current.results);
    assert.equal(results, "", "the killed command's result was collected: the channel is free for the next Node-RED");
  });

  it("a managed daemon SIGKILLed mid-command: the config node restarts it, the message fails with INTERRUPTED, nothing runs twice", async function () {
    const log = test.current.file("ran");
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "daemon running");
    const first = await waitFor("the managed daemon", () => readLiveDaemon(test.current.daemon));
    const caught = new Inbox("caught");
    const out = new Inbox("out");
    node("exec").receive({ payload: `echo $$ > ${log}.pgid; echo started >> ${log}; sleep 30`, topic: "victim" });
    await waitFor("the command to start", () => lines(log).includes("started"));
    const pgid = Number(readFileSync(`${log}.pgid`, "utf8"));
    process.kill(first.pid, "SIGKILL");
    // The submitter waits up to 10 s for a managed daemon to come back; the new daemon finds
    // the dead one's running record and reports it as interrupted (PROTOCOL.md §7).
    const failed = await caught.nth(0, 5000);
    assert.equal(failed.topic, "victim");
    assert.equal(errorOf(failed).code, "INTERRUPTED");
    assert.match(errorOf(failed).message, new RegExp(`the daemon \\(pid ${first.pid}\\) died while the command ran; its outcome is unknown and it was not run again`));
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // gone already
    }
    await waitFor("a new daemon", () => {
      const live = readLiveDaemon(test.current.daemon);
      return live !== null && live.pid !== first.pid;
    });
    node("exec").receive({ payload: `echo next >> ${log}` });
    assert.equal((await out.nth(0, 10_000)).payload, 0);
    assert.deepEqual(lines(log), ["started", "next"], "the killed daemon's command was not run again");
  });
});

describe("hardening: every payload type through the exec node", function () {
  this.timeout(60_000);
  const test = useTestFiles();

  async function deploy(options: FlowOptions): Promise<void> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "external", ...options }));
    await waitForStatus("exec", "daemon running");
  }

  type Outcome = { runs: { payload?: unknown; payloadIn?: unknown[]; stdout?: string } } | { error: RegExp };
  const big = "x".repeat(1024 * 1024);
  const invalidUtf8 = Buffer.from([0x65, 0x63, 0x68, 0x6f, 0x20, 0xff, 0xfe]);
  // As the whole command only a string is accepted; an appended argument may also be a number or boolean.
  const notAString = (kind: string) => ({ error: new RegExp(`BAD_COMMAND: msg\\.payload is ${kind}: set a Command in the node, or send the command as a string`) });
  const notAnArgument = (kind: string) => ({ error: new RegExp(`BAD_COMMAND: msg\\.payload is ${kind}; the appended argument must be a string, number or boolean`) });
  // [name, payload, outcome in plain mode (payload = command), outcome in append mode (printf '<%s>' + payload)]
  const table: [string, unknown, Outcome, Outcome][] = [
    ["a string", "exit 3", { runs: { payload: 3 } }, { runs: { stdout: "<exit 3>" } }],
    // A number is not run as a command (the default inject node sends a timestamp).
    ["a number", 7, notAString("a number \\(7\\)"), { runs: { stdout: "<7>" } }],
    ["a negative float", -1.5, notAString("a number \\(-1\\.5\\)"), { runs: { stdout: "<-1.5>" } }],
    ["boolean true", true, notAString("a boolean \\(true\\)"), { runs: { stdout: "<true>" } }],
    ["boolean false", false, notAString("a boolean \\(false\\)"), { runs: { stdout: "<false>" } }],
    ["an object", { cmd: "true" }, notAString("an object"), notAnArgument("an object")],
    ["an array", ["ls", "-l"], notAString("an array"), notAnArgument("an array")],
    ["a Buffer", Buffer.from("true"), notAString("a Buffer"), notAnArgument("a Buffer")],
    ["a Buffer of invalid UTF-8", invalidUtf8, notAString("a Buffer"), notAnArgument("a Buffer")],
    ["null", null, notAString("null"), notAnArgument("null")],
    ["undefined", undefined, notAString("missing"), notAnArgument("missing")],
    ["an empty string", "", { error: /BAD_COMMAND: the command is empty/ }, { runs: { stdout: "<>" } }],
    ["whitespace", " \t ", { error: /BAD_COMMAND: the command is empty/ }, { runs: { stdout: "< \t >" } }],
    ["a newline", "echo a\necho b", { error: /BAD_COMMAND: the command contains a line break/ }, { runs: { stdout: "<echo a\necho b>" } }],
    ["a trailing CR LF", "true\r\n", { error: /BAD_COMMAND: the command contains a line break/ }, { runs: { stdout: "<true\r\n>" } }],
    ["a NUL byte", "echo a\0b", { error: /BAD_COMMAND: the command contains a NUL byte/ }, { error: /BAD_COMMAND: msg\.payload contains a NUL byte/ }],
    ["a lone surrogate (invalid Unicode)", "echo \ud800", { error: /BAD_COMMAND: the command is not valid Unicode/ }, { error: /BAD_COMMAND: the command is not valid Unicode/ }],
    ["a 1 MiB string", big, { error: /BAD_COMMAND: the command is 1048576 bytes long; the limit is 65536 bytes/ }, { error: /BAD_COMMAND: the command is 10485\d\d bytes long; the limit is 65536 bytes/ }],
    ["shell syntax", "echo $((6*7)) | cat", { runs: { payload: 0 } }, { runs: { stdout: "<echo $((6*7)) | cat>" } }],
  ];

  for (const mode of ["plain", "append"] as const) {
    it(`${mode} mode: ${table.length} payload kinds, each runs or fails with its clear error; refused ones write nothing`, async function () {
      await deploy({ exec: mode === "plain" ? { capture: true } : { command: "printf '<%s>'", appendPayload: true, capture: true } });
      const out = new Inbox("out");
      const caught = new Inbox("caught");
      for (const [index, [name, payload, plain, append]] of table.entries()) {
        const expected = mode === "plain" ? plain : append;
        const before = fs.statSync(test.current.commands);
        const ended = out.messages.length + caught.messages.length;
        node("exec").receive({ payload, index });
        await waitFor(`the outcome of ${name}`, () => out.messages.length + caught.messages.length > ended);
        const msg = (out.messages.length > 0 && out.messages.at(-1)?.index === index ? out.messages.at(-1) : caught.messages.at(-1)) as Msg;
        assert.equal(msg.index, index, `${name}: the message that came back is the one sent`);
        if ("runs" in expected) {
          assert.equal(msg.error, undefined, `${name}: ${JSON.stringify(msg.error)}`);
          if (expected.runs.payload !== undefined) assert.equal(msg.payload, expected.runs.payload, name);
          if (expected.runs.payloadIn !== undefined) assert.ok(expected.runs.payloadIn.includes(msg.payload), `${name}: ${String(msg.payload)}`);
          if (expected.runs.stdout !== undefined) assert.equal(msg.stdout, expected.runs.stdout, name);
        } else {
          const error = errorOf(msg);
          assert.match(`${error.code ?? ""}: ${error.message}`, expected.error, name);
          const after = fs.statSync(test.current.commands);
          assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], `${name}: nothing was written to the commands file`);
          assert.equal(lastStatus("exec"), "bad input");
        }
      }
    });
  }

  it("60 random hostile payloads end to end in append mode: each is one argument, byte for byte", async function () {
    await deploy({ exec: { command: "printf '<%s>'", appendPayload: true, capture: true } });
    const next = random(0x60_0004);
    const payloads = Array.from({ length: 60 }, () => hostilePayload(next).replaceAll("PWNED", test.current.file("PWNED")));
    const out = new Inbox("out");
    const caught = new Inbox("caught");
    payloads.forEach((payload, index) => node("exec").receive({ payload, index }));
    await out.nth(payloads.length - 1, 20_000);
    assert.deepEqual(caught.messages, []);
    for (const msg of out.messages) {
      const payload = payloads[msg.index as number] as string;
      assert.equal(msg.stdout, `<${payload}>`, `payload #${String(msg.index)} ${JSON.stringify(payload)}`);
    }
    assert.equal(existsSync(test.current.file("PWNED")), false);
  });
});

describe("hardening: the config node's allowlist", function () {
  this.timeout(30_000);
  const test = useTestFiles();

  const ALLOWLIST = ["# what the flows may run", "echo *", "exit ?", "", "printf '<%s>'", "/usr/bin/env true"].join("\n");

  async function deploy(exec: Record<string, unknown>): Promise<void> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    const flow = execFlow(test.current, { mode: "external", exec }).map((n): FlowNode => (n.id === "daemon" ? { ...n, allowlist: ALLOWLIST } : n));
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
  }

  /** Watches the files' directory: a refused command must not touch any file there. */
  function watchDirectory(): { events: string[]; close(): void } {
    const events: string[] = [];
    const watcher = fs.watch(test.current.dir, (event, name) => events.push(`${event} ${String(name)}`));
    return { events, close: () => watcher.close() };
  }

  it("plain mode: matching commands run; others fail with NOT_ALLOWED and never reach the daemon's files", async function () {
    await deploy({ capture: true });
    const out = new Inbox("out");
    const caught = new Inbox("caught");
    const pwned = test.current.file("pwned");
    const allowed: [string, number | string][] = [
      ["echo hello world", "hello world\n"],
      ["  echo spaced  ", "spaced\n"],
      ["echo a-b_c.d/e:f,g+h@i%j=k", "a-b_c.d/e:f,g+h@i%j=k\n"],
      ["exit 7", 7],
      ["/usr/bin/env true", 0],
      ["echo ünïcödé", "ünïcödé\n"],
    ];
    const refused = [
      `echo hi; touch ${pwned}`,
      `echo $(touch ${pwned})`,
      `echo \`touch ${pwned}\``,
      `echo hi && touch ${pwned}`,
      `echo hi | tee ${pwned}`,
      `echo hi > ${pwned}`,
      "echo $HOME",
      "echo 'quoted'",
      "echo *",
      "exit 12",
      "rm -rf /",
      "/usr/bin/env touch x",
    ];
    for (const [i, [command, expected]] of allowed.entries()) {
      node("exec").receive({ payload: command });
      const msg = await out.nth(i);
      if (typeof expected === "number") assert.equal(msg.payload, expected, command);
      else assert.equal(msg.stdout, expected, command);
    }
    const watch = watchDirectory();
    const before = fs.statSync(test.current.commands);
    try {
      for (const command of refused) node("exec").receive({ payload: command, command });
      await caught.nth(refused.length - 1);
      await delay(200);
    } finally {
      watch.close();
    }
    for (const msg of caught.messages) {
      assert.equal(errorOf(msg).code, "NOT_ALLOWED", String(msg.command));
      assert.match(errorOf(msg).message, /^the command ".*" matches no pattern of the daemon's allowlist; it was not run/);
    }
    assert.deepEqual(caught.messages.map((msg) => msg.command), refused);
    assert.deepEqual(watch.events, [], "no file in the daemon's directory was touched");
    const after = fs.statSync(test.current.commands);
    assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs]);
    assert.equal(existsSync(pwned), false);
    assert.equal(lastStatus("exec"), "not allowed");
    assert.equal(out.messages.length, allowed.length);
  });

  it("append mode: the node's own command is checked; the payload stays one argument whatever it holds", async function () {
    await deploy({ command: "printf '<%s>'", appendPayload: true, capture: true });
    const out = new Inbox("out");
    node("exec").receive({ payload: "; rm -rf / $(id) `id`" });
    assert.equal((await out.nth(0)).stdout, "<; rm -rf / $(id) `id`>");
  });

  it("append mode with a command outside the allowlist: every message is refused, whatever its payload", async function () {
    await deploy({ command: "cat", appendPayload: true });
    const caught = new Inbox("caught");
    const watch = watchDirectory();
    node("exec").receive({ payload: "/etc/hostname" });
    const msg = await caught.nth(0);
    await delay(200);
    watch.close();
    assert.equal(errorOf(msg).code, "NOT_ALLOWED");
    assert.match(errorOf(msg).message, /^the node's command "cat" matches no pattern/);
    assert.deepEqual(watch.events, []);
  });
});
