// Example 06 (a privileged daemon in external mode): it deploys as shipped, with a clear status
// while /run/file-daemon is missing, and on a daemon whose --allow file does not name the
// example's commands those are refused by the daemon, although the config node allows them.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { coreNode, helper, lastStatus, node, OUR_NODES, useTestFiles, waitFor, type FlowNode } from "./support";

const EXAMPLE = path.resolve(__dirname, "..", "..", "..", "examples", "06 - Restart a service or reboot (privileged daemon).json");
const CORE = ["common/20-inject.js", "common/21-debug.js", "common/90-comment.js"].map(coreNode);

function example(): FlowNode[] {
  return JSON.parse(readFileSync(EXAMPLE, "utf8")) as FlowNode[];
}

function byType(flow: FlowNode[], type: string): FlowNode[] {
  return flow.filter((n) => n.type === type);
}

describe("example 06: restart a service or reboot through a privileged daemon", function () {
  this.timeout(30_000);
  const test = useTestFiles();

  it("is an external-mode config node on /run/file-daemon, and its inject nodes send commands its allowlist names", () => {
    const flow = example();
    const configs = byType(flow, "file-daemon");
    assert.equal(configs.length, 1);
    const config = configs[0] as FlowNode;
    assert.equal(config.mode, "external");
    assert.equal(config.commandsFile, "/run/file-daemon/commands");
    assert.equal(config.resultsFile, "/run/file-daemon/results");
    const allowed = String(config.allowlist).split("\n");
    for (const inject of byType(flow, "inject")) assert.ok(allowed.includes(String(inject.payload)), String(inject.payload));
  });

  it("deploys as shipped: without /run/file-daemon the exec node shows 'daemon down', and nothing crashes", async function () {
    if (existsSync("/run/file-daemon")) this.skip(); // this machine has the recipe's directory: the status would differ
    const flow = example();
    await helper.load([...OUR_NODES, ...CORE], flow);
    const [exec] = byType(flow, "file-daemon-exec");
    await waitFor("a status on the exec node", () => lastStatus(exec?.id ?? "") !== undefined);
    assert.equal(lastStatus(exec?.id ?? ""), "daemon down");
  });

  it("on a daemon whose --allow file names neither command, both are refused by the daemon (the rule named) and never run", async () => {
    const allow = test.current.file("allow");
    writeFileSync(allow, "true\n", { mode: 0o644 });
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1, allow });
    test.onCleanup(() => daemon.stop());
    const flow = example().map((n): FlowNode => (n.type === "file-daemon" ? { ...n, commandsFile: test.current.commands, resultsFile: test.current.results, sleepTime: 0.1 } : n));
    await helper.load([...OUR_NODES, ...CORE], flow);
    const [exec] = byType(flow, "file-daemon-exec");
    const errors: string[] = [];
    const target = node(exec?.id ?? "");
    target.on("call:error", (call: { args: unknown[] }) => errors.push(String(call.args[0])));
    for (const inject of byType(flow, "inject")) node(inject.id).receive({});
    await waitFor("two refusals", () => errors.length >= 2);
    for (const [i, error] of errors.entries()) assert.match(error, new RegExp(`not allowed by ${allow.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: no pattern there matches`), `error ${i}`);
  });
});
