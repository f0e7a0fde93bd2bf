// Example 07 (Stream ticked): as shipped, each line goes out on the second output while the
// command runs, then the exit code on the first.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { coreNode, helper, node, OUR_NODES, useTestFiles, waitFor, type FlowNode } from "./support";

const EXAMPLE = path.resolve(__dirname, "..", "..", "..", "examples", "07 - Follow a long command line by line.json");
const CORE = ["common/20-inject.js", "common/21-debug.js", "common/90-comment.js"].map(coreNode);

describe("example 07: follow a long command line by line", function () {
  this.timeout(30_000);
  const test = useTestFiles();

  it("sends each line on the second output as it comes, then the exit code", async () => {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    const shipped = JSON.parse(readFileSync(EXAMPLE, "utf8")) as FlowNode[];
    const flow = shipped.map((n): FlowNode => {
      if (n.type === "file-daemon") return { ...n, mode: "external", commandsFile: test.current.commands, resultsFile: test.current.results, sleepTime: 0.1 };
      // The debug nodes become helper nodes, to see what reaches them.
      if (n.type === "debug") return { id: n.id, type: "helper", z: n.z, x: n.x, y: n.y, wires: [] };
      return n;
    });
    const exec = flow.find((n) => n.type === "file-daemon-exec");
    assert.ok(exec !== undefined);
    assert.equal(exec.stream, true);
    const [resultWire, lineWire] = exec.wires as string[][];
    await helper.load([...OUR_NODES, ...CORE], flow);
    const got: { at: number; output: string; msg: Record<string, unknown> }[] = [];
    node(resultWire?.[0] ?? "").on("input", (msg: Record<string, unknown>) => got.push({ at: performance.now(), output: "result", msg }));
    node(lineWire?.[0] ?? "").on("input", (msg: Record<string, unknown>) => got.push({ at: performance.now(), output: "line", msg }));
    const inject = flow.find((n) => n.type === "inject");
    node(inject?.id ?? "").receive({});
    await waitFor("the exit code", () => got.some((g) => g.output === "result"), 20_000);
    assert.deepEqual(
      got.map((g) => (g.output === "line" ? `${String(g.msg.topic)}: ${String(g.msg.payload)}` : `exit ${String(g.msg.payload)}`)),
      ["stdout: step 1 of 5", "stdout: step 2 of 5", "stdout: step 3 of 5", "stdout: step 4 of 5", "stdout: step 5 of 5", "stderr: finished", "exit 0"],
    );
    const first = got[0]?.at ?? 0;
    const last = got[4]?.at ?? 0;
    assert.ok(last - first > 3000, `the lines came as they were printed, about a second apart (${Math.round(last - first)} ms from the first to the fifth)`);
  });
});
