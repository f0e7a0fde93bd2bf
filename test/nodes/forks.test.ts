import assert from "node:assert/strict";
import { coreNode, execFlow, helper, Inbox, node, OUR_NODES, useTestFiles, waitForStatus, type FlowNode } from "./support";
import { SpawnCounter } from "../../bench/spawn-counter";

const MESSAGES = 50;
const timings: string[] = [];

/** Sends MESSAGES messages one after the other (each after the previous result); ms per message. */
async function runSequentially(out: Inbox, payload: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    node("exec").receive({ payload });
    await out.nth(i);
  }
  return (performance.now() - started) / MESSAGES;
}

describe("forks per message", function () {
  const test = useTestFiles();
  let counter: SpawnCounter;

  beforeEach(() => (counter = new SpawnCounter()));
  afterEach(() => counter.restore());
  after(() => {
    if (timings.length > 0) console.log(`      ${MESSAGES} × \`true\`, one at a time: ${timings.join("; ")}`);
  });

  it(`file-daemon-exec: ${MESSAGES} messages, zero processes started by Node-RED (only the managed daemon, once)`, async function () {
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "managed" }));
    await waitForStatus("exec", "daemon running");
    assert.equal(counter.count, 1, counter.calls.join("\n"));
    assert.match(counter.calls[0] ?? "", /bin\/file-daemon\.js /);

    counter.reset();
    const out = new Inbox("out");
    const perMessage = await runSequentially(out, "true");
    assert.deepEqual(new Set(out.messages.map((msg) => msg.payload)), new Set([0]));
    assert.equal(counter.count, 0, `spawned: ${counter.calls.join("\n")}`);
    timings.push(`file-daemon-exec ${perMessage.toFixed(1)} ms/msg`);
  });

  it(`positive control: the same counter sees ${MESSAGES} processes for the core exec node`, async function () {
    const flow: FlowNode[] = [
      { id: "tab", type: "tab", label: "control" },
      { id: "exec", type: "exec", z: "tab", x: 300, y: 100, command: "true", addpay: false, append: "", useSpawn: "false", timer: "", oldrc: false, wires: [[], [], ["out"]] },
      { id: "out", type: "helper", z: "tab", x: 500, y: 100, wires: [] },
    ];
    await helper.load([coreNode("function/90-exec.js")], flow);
    const out = new Inbox("out");
    const perMessage = await runSequentially(out, "");
    assert.deepEqual(new Set(out.messages.map((msg) => (msg.payload as { code: number }).code)), new Set([0]));
    assert.equal(counter.count, MESSAGES, counter.calls.slice(0, 3).join("\n"));
    timings.push(`core exec ${perMessage.toFixed(1)} ms/msg`);
  });
});
