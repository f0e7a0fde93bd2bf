import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { execFlow, helper, Inbox, lastStatus, node, OUR_NODES, useTestFiles, waitFor, waitForStatus, type FlowOptions, type Msg } from "./support";

/** Issue #13 in the node: Stream output on a second output, Working dir, Environment, msg.cwd, msg.env, msg.stdin. */
describe("file-daemon-exec: streamed output, cwd, env and stdin", function () {
  this.timeout(60_000);
  const test = useTestFiles();

  async function deploy(options: FlowOptions = {}): Promise<{ out: Inbox; lines: Inbox; caught: Inbox; send: (msg: Msg) => void }> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    const flow = execFlow(test.current, { mode: "external", ...options });
    const exec = flow.find((n) => n.id === "exec");
    if (exec !== undefined) exec.wires = [["out"], ["lines"]];
    flow.push({ id: "lines", type: "helper", z: "tab", x: 500, y: 150, wires: [] });
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
    return { out: new Inbox("out"), lines: new Inbox("lines"), caught: new Inbox("caught"), send: (msg) => node("exec").receive(msg) };
  }

  it("Stream: each line on the second output as it comes (topic, seq, id), then the result on the first", async function () {
    const { out, lines, send } = await deploy({ exec: { stream: true, outputs: 2 } });
    send({ payload: "echo one; echo two >&2; sleep 0.3; seq 3000; exit 4", topic: "job" });
    await waitFor("the first two lines before the command ends", () => (lines.messages.length >= 2 && out.messages.length === 0 ? true : undefined));
    const result = await out.nth(0, 20_000);
    assert.equal(result.payload, 4);
    assert.equal(result.topic, "job", "the result keeps the incoming message");
    assert.equal(result.streamed, 3002);
    assert.equal(result.missed, 0);
    assert.equal(lines.messages.length, 3002, "every line arrived before the result");
    const [one, two] = lines.messages;
    assert.deepEqual({ payload: one?.payload, topic: one?.topic, seq: one?.seq, partial: one?.partial }, { payload: "one", topic: "stdout", seq: 1, partial: false });
    assert.deepEqual({ payload: two?.payload, topic: two?.topic, seq: two?.seq }, { payload: "two", topic: "stderr", seq: 2 });
    assert.ok(lines.messages.every((msg, i) => msg.seq === i + 1 && msg.id === one?.id && typeof msg.id === "string"));
    assert.deepEqual(lines.messages.slice(2).map((msg) => msg.payload), Array.from({ length: 3000 }, (_, i) => String(i + 1)));
    assert.equal(lastStatus("exec"), "exit 4");
  });

  it("without Stream, nothing goes to a second output", async function () {
    const { out, lines, send } = await deploy();
    send({ payload: "echo hidden" });
    assert.equal((await out.nth(0)).payload, 0);
    assert.equal(lines.messages.length, 0);
    assert.equal((await out.nth(0)).streamed, undefined);
  });

  it("Working dir and Environment of the node; msg.cwd overrides, msg.env merges over; msg.stdin is read", async function () {
    const dir = path.join(path.dirname(test.current.commands), "work");
    const other = path.join(path.dirname(test.current.commands), "other");
    mkdirSync(dir);
    mkdirSync(other);
    const { out, send } = await deploy({ exec: { capture: true, cwd: dir, env: "# greeting\nGREETING=hello there\nNAME=node\n" } });
    send({ payload: 'pwd; echo "$GREETING, $NAME"' });
    assert.equal((await out.nth(0)).stdout, `${dir}\nhello there, node\n`);
    send({ payload: 'pwd; echo "$GREETING, $NAME, $COUNT"; cat', cwd: other, env: { NAME: "msg", COUNT: 3 }, stdin: Buffer.from("piped in") });
    assert.equal((await out.nth(1)).stdout, `${other}\nhello there, msg, 3\npiped in`);
  });

  it("bad msg.cwd, msg.env or msg.stdin, and a missing directory, end with a Catch that names them; nothing runs", async function () {
    const { out, caught, send } = await deploy({ exec: { command: "touch ran", appendPayload: false } });
    send({ payload: "x", cwd: "relative" });
    send({ payload: "x", env: ["A=1"] });
    send({ payload: "x", env: { "BAD NAME": "1" } });
    send({ payload: "x", stdin: { not: "text" } });
    send({ payload: "x", cwd: "/nonexistent-file-daemon-dir" });
    const errors = await Promise.all([0, 1, 2, 3, 4].map((i) => caught.nth(i)));
    const messages = errors.map((msg) => String((msg.error as { message: unknown }).message));
    // The first four fail at once, the last two after a look at the daemon: in any order.
    for (const expected of [/msg\.cwd must be an absolute path/, /msg\.env must be an object/, /env has the name "BAD NAME"/, /msg\.stdin must be a string or a Buffer/, /the working directory \/nonexistent-file-daemon-dir does not exist/]) {
      assert.ok(messages.some((message) => expected.test(message)), `${String(expected)} in ${messages.join(" | ")}`);
    }
    assert.equal(out.messages.length, 0);
    assert.equal(lastStatus("exec"), "bad input");
  });

  it("an Environment line that is not NAME=value fails every message, saying which line", async function () {
    const { caught, send } = await deploy({ exec: { env: "GOOD=1\nthis is not a variable" } });
    send({ payload: "true" });
    const error = await caught.nth(0);
    assert.match(String((error.error as { message: unknown }).message), /the node's Environment, line 2 .*write NAME=value/);
  });
});
