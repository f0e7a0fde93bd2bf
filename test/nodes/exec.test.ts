import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { Daemon } from "../../src/daemon/daemon";
import { isGone } from "../../src/supervisor/daemon-process";
import { execFlow, helper, Inbox, lastStatus, node, OUR_NODES, useTestFiles, waitFor, waitForStatus, type FlowOptions, type Msg } from "./support";

/** The errors a node reported (done(err) reports them through node.error, which the helper spies on). */
function reportedErrors(target: ReturnType<typeof node>): string[] {
  const spy = target.error as { getCalls(): { thisValue: unknown; args: [unknown] }[] };
  return spy
    .getCalls()
    .filter((call) => call.thisValue === target)
    .map((call) => String(call.args[0]));
}

describe("file-daemon-exec against a running daemon", function () {
  const test = useTestFiles();

  /** Starts a daemon in this process, then deploys a flow whose config node watches it. */
  async function deploy(options: FlowOptions = {}): Promise<{ out: Inbox; caught: Inbox; send: (msg: Msg) => void }> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1, channels: options.channels ?? 1 });
    test.onCleanup(() => daemon.stop());
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "external", ...options }));
    await waitForStatus("exec", "daemon running");
    return { out: new Inbox("out"), caught: new Inbox("caught"), send: (msg) => node("exec").receive(msg) };
  }

  it("puts the exit code in msg.payload and msg.rc, keeping the other properties", async function () {
    const { out, send } = await deploy();
    send({ payload: "exit 0", topic: "first", extra: { kept: true } });
    const ok = await out.nth(0);
    assert.equal(ok.payload, 0);
    assert.deepEqual(ok.rc, { code: 0 });
    assert.equal(ok.topic, "first");
    assert.deepEqual(ok.extra, { kept: true });
    assert.equal(lastStatus("exec"), "exit 0");

    send({ payload: "exit 3" });
    const three = await out.nth(1);
    assert.equal(three.payload, 3);
    assert.equal((three.rc as { code: number }).code, 3);
    assert.match(String((three.rc as { message: unknown }).message), /3/);
    assert.equal(lastStatus("exec"), "exit 3");
  });

  it("reports a command that died of a signal: payload null, rc.signal", async function () {
    const { out, send } = await deploy();
    send({ payload: "kill -9 $$" });
    const msg = await out.nth(0);
    assert.equal(msg.payload, null);
    assert.equal((msg.rc as { code: null }).code, null);
    assert.equal((msg.rc as { signal: string }).signal, "SIGKILL");
    assert.equal(lastStatus("exec"), "signal SIGKILL");
  });

  it("captures stdout and stderr as strings", async function () {
    const { out, send } = await deploy({ exec: { capture: true } });
    send({ payload: "printf 'out put'; printf 'err' >&2; exit 2" });
    const msg = await out.nth(0);
    assert.equal(msg.stdout, "out put");
    assert.equal(msg.stderr, "err");
    assert.equal(msg.payload, 2);
  });

  it("converts numbers to text, and refuses objects, Buffers and null with a Catch (bad input)", async function () {
    const { out, caught, send } = await deploy({ exec: { command: "exit", appendPayload: true } });
    send({ payload: 7 });
    assert.equal((await out.nth(0)).payload, 7);
    send({ payload: { cmd: "true" } });
    send({ payload: Buffer.from("true") });
    send({ payload: null });
    const errors = await Promise.all([caught.nth(0), caught.nth(1), caught.nth(2)]);
    assert.deepEqual(
      errors.map((msg) => /msg\.payload is (an object|a Buffer|null)/.exec(String((msg.error as { message: unknown }).message))?.[1]),
      ["an object", "a Buffer", "null"],
    );
    assert.equal(lastStatus("exec"), "bad input");
    assert.equal(out.messages.length, 1);
  });

  it("kills a command that runs past the node's timeout, and a Catch node gets msg.rc", async function () {
    const { out, caught, send } = await deploy({ exec: { timeout: 0.3 } });
    send({ payload: "sleep 10", topic: "slow" });
    const msg = await caught.nth(0);
    assert.match(String((msg.error as { message: unknown }).message), /timed out after 0\.3 s/);
    assert.equal((msg.rc as { signal: string }).signal, "SIGTERM");
    assert.equal(msg.topic, "slow");
    assert.equal(lastStatus("exec"), "timeout");
    assert.equal(out.messages.length, 0);
  });

  it("lets msg.timeout override the node's timeout, both ways", async function () {
    const { out, caught, send } = await deploy({ exec: { timeout: 0.2 } });
    send({ payload: "sleep 0.5", timeout: 0 });
    assert.equal((await out.nth(0)).payload, 0);
    send({ payload: "sleep 10", timeout: 0.3 });
    assert.match(String(((await caught.nth(0)).error as { message: unknown }).message), /timed out after 0\.3 s/);
    send({ payload: "true", timeout: "soon" });
    assert.match(String(((await caught.nth(1)).error as { message: unknown }).message), /msg\.timeout must be a number/);
  });

  it("msg.kill kills the running command; it is not run itself, and queued messages still run", async function () {
    const marker = test.current.file("kill-message-ran");
    const started = test.current.file("started");
    const { out, caught, send } = await deploy();
    send({ payload: `touch ${started}; sleep 10`, topic: "victim" });
    await waitFor("the command to start", () => existsSync(started));
    send({ payload: "echo next", topic: "queued" });
    await waitForStatus("exec", "queued 1");
    send({ kill: true, payload: `touch ${marker}` });
    const killed = await caught.nth(0);
    assert.equal(killed.topic, "victim");
    assert.match(String((killed.error as { message: unknown }).message), /killed on request/);
    assert.equal((killed.rc as { signal: string }).signal, "SIGTERM");
    const next = await out.nth(0);
    assert.equal(next.topic, "queued");
    assert.equal(next.payload, 0);
    assert.equal(existsSync(marker), false, "the kill message must not run as a command");
    assert.equal(out.messages.length + caught.messages.length, 2);
  });

  it("runs queued messages first in, first out", async function () {
    const log = test.current.file("order");
    const { out, send } = await deploy();
    for (let i = 1; i <= 6; i++) send({ payload: `echo ${i} >> ${log}`, index: i });
    await out.nth(5);
    assert.deepEqual(
      out.messages.map((msg) => msg.index),
      [1, 2, 3, 4, 5, 6],
    );
    assert.equal(readFileSync(log, "utf8"), "1\n2\n3\n4\n5\n6\n");
  });

  it("refuses a message beyond 100 waiting with a clear error (Catch), never dropping it silently", async function () {
    const { caught, send } = await deploy();
    send({ payload: "sleep 10" });
    await waitForStatus("exec", "running");
    for (let i = 0; i < 99; i++) send({ payload: "true" });
    await waitForStatus("exec", "queued 99");
    send({ payload: "true" });
    await waitForStatus("exec", "queue full");
    send({ payload: "true", topic: "one too many" });
    const refused = await caught.nth(0);
    assert.equal(refused.topic, "one too many");
    assert.match(String((refused.error as { message: unknown }).message), /queue is full \(100 messages/);
    assert.equal(lastStatus("exec"), "queue full");
  });

  it("runs as many commands at once as the daemon has channels", async function () {
    const a = test.current.file("a");
    const b = test.current.file("b");
    // Each command finishes only once the other has started: they must run at the same time.
    const { out, send } = await deploy({ channels: 2, exec: { timeout: 5 } });
    send({ payload: `touch ${a}; while [ ! -e ${b} ]; do sleep 0.02; done` });
    send({ payload: `touch ${b}; while [ ! -e ${a} ]; do sleep 0.02; done` });
    await out.nth(1);
    assert.deepEqual(
      out.messages.map((msg) => msg.payload),
      [0, 0],
    );
  });

  it("with failOnNonZero, a non-zero exit goes to Catch with msg.rc and nothing on the output", async function () {
    const { out, caught, send } = await deploy({ exec: { failOnNonZero: true, capture: true } });
    send({ payload: "echo oops >&2; exit 4", topic: "failing" });
    const msg = await caught.nth(0);
    assert.match(String((msg.error as { message: unknown }).message), /exited with code 4/);
    assert.equal((msg.rc as { code: number }).code, 4);
    assert.equal(msg.stderr, "oops\n");
    assert.equal(msg.payload, "echo oops >&2; exit 4", "the input payload is kept for retries");
    send({ payload: "exit 0" });
    assert.equal((await out.nth(0)).payload, 0);
    assert.equal(out.messages.length, 1);
  });

  it("on close (redeploy), kills its running command and ends waiting messages with an error, within seconds", async function () {
    const pidFile = test.current.file("pid");
    const { send } = await deploy();
    send({ payload: `echo $$ > ${pidFile}; exec sleep 30`, topic: "running" });
    await waitFor("the command to start", () => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"));
    const commandPid = Number(readFileSync(pidFile, "utf8"));
    send({ payload: "true", topic: "waiting" });
    await waitForStatus("exec", "queued 1");
    const exec = node("exec");
    const started = performance.now();
    await helper.clearFlows();
    assert.ok(performance.now() - started < 5000, `close took ${Math.round(performance.now() - started)} ms`);
    await waitFor(`the command (pid ${commandPid}) to be killed`, () => isGone(commandPid, null));
    const errors = await waitFor("both messages to end", () => {
      const reported = reportedErrors(exec);
      return reported.length >= 2 ? reported : null;
    });
    assert.ok(errors.some((line) => /node was closed.*not run/.test(line)), errors.join("\n"));
    assert.ok(errors.some((line) => /node was closed.*killed/.test(line)), errors.join("\n"));
  });

  it("runs a fixed command without the payload when append is off", async function () {
    const { out, send } = await deploy({ exec: { command: "printf fixed", capture: true } });
    send({ payload: "; echo injected" });
    assert.equal((await out.nth(0)).stdout, "fixed");
  });
});

describe("file-daemon-exec append mode", function () {
  const test = useTestFiles();

  it("passes hostile payloads as exactly one argument, byte for byte, with no side effect", async function () {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    const pwned = test.current.file("pwned");
    // printf repeats its format once per argument: "<a><b>" would show a split.
    await helper.load([...OUR_NODES], execFlow(test.current, { exec: { command: "printf '<%s>'", appendPayload: true, capture: true } }));
    const payloads = [
      `; rm -rf ${test.current.dir}; touch ${pwned}`,
      `$(touch ${pwned})`,
      `\`touch ${pwned}\``,
      `' ; touch ${pwned}; '`,
      `" ; touch ${pwned}; "`,
      `it's "quoted" \\ back\\slash $HOME * ?`,
      `line one\nline two; touch ${pwned}`,
      "trailing newlines\n\n",
      "\r\ncarriage\\n not a newline \\\\",
      "",
      "  spaces  around  ",
      "-n",
      "%s %d %%",
      "tab\there | pipe & amp > redirect < in",
      "ünïcödé ✓ 😀",
    ];
    const out = new Inbox("out");
    const caught = new Inbox("caught");
    payloads.forEach((payload, index) => node("exec").receive({ payload, index }));
    await out.nth(payloads.length - 1);
    assert.equal(caught.messages.length, 0, JSON.stringify(caught.messages.map((msg) => msg.error)));
    for (const msg of out.messages) {
      const payload = payloads[msg.index as number];
      assert.equal(msg.stdout, `<${payload}>`, `payload #${String(msg.index)} ${JSON.stringify(payload)}`);
    }
    assert.equal(existsSync(pwned), false, "no payload may run a command");
    assert.equal(existsSync(test.current.dir), true);
  });

  it("refuses a payload with a NUL byte, which no argument can hold", async function () {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    await helper.load([...OUR_NODES], execFlow(test.current, { exec: { command: "printf %s", appendPayload: true } }));
    const caught = new Inbox("caught");
    node("exec").receive({ payload: "a\0b" });
    assert.match(String(((await caught.nth(0)).error as { message: unknown }).message), /NUL byte/);
  });
});
