// On a Node.js older than the package needs (issue 10, item 3): the CLI and a real Node-RED 4.1
// run by that Node.js (/usr/bin/node here, 20.x) say so and how to upgrade, exec nodes fail
// each message with UNSUPPORTED_NODE, and nothing starts a daemon.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { MIN_NODE_MAJOR, nodeVersionProblem, UNSUPPORTED_NODE, UNSUPPORTED_NODE_STATUS } from "../../src/shared/node-version";
import { NR_PKG, REPO, startNodeRed, type NodeRed } from "../browser/node-red-process";
import { useTempDir } from "../helpers/temp-dir";
import { waitFor } from "../helpers/wait-for";

const OLD_NODE = "/usr/bin/node";
const CLI = path.join(REPO, "bin", "file-daemon.js");

/** The version of OLD_NODE, or why the tests cannot run. */
function oldNode(): { version: string } | { skip: string } {
  if (!fs.existsSync(OLD_NODE)) return { skip: `${OLD_NODE} is missing` };
  const run = spawnSync(OLD_NODE, ["-p", "process.versions.node"], { encoding: "utf8" });
  const version = run.stdout.trim();
  if (run.status !== 0 || version === "") return { skip: `${OLD_NODE} -p process.versions.node failed: ${run.stderr}` };
  if (Number(version.split(".")[0]) >= MIN_NODE_MAJOR) return { skip: `${OLD_NODE} is ${version}, not older than ${MIN_NODE_MAJOR}` };
  return { version };
}

const found = oldNode();
const skip = "skip" in found ? found.skip : null;
const version = "version" in found ? found.version : "";
/** The sentence, as nodeVersionProblem words it on that Node.js. */
const problem = skip === null ? (nodeVersionProblem(version) as string) : "";

/** Processes whose command line mentions `text` (a daemon started on our files would). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

(skip === null ? describe : describe.skip)(`on an old Node.js (${skip === null ? `${OLD_NODE} ${version}` : `skipped: ${skip}`})`, function () {
  this.timeout(120_000);
  const temp = useTempDir({ prefix: "file-daemon-old-node-" });

  it("words the message for users", function () {
    assert.match(problem, new RegExp(`^@file-daemon/node-red needs Node\\.js 22 or newer \\(this is ${version.replace(/\./g, "\\.")}\\); `));
    assert.match(problem, /bash <\(curl -sL https:\/\/github\.com\/node-red\/linux-installers\/releases\/latest\/download\/install-update-nodered-deb\) --node22/);
    assert.ok(UNSUPPORTED_NODE_STATUS.length <= 20, UNSUPPORTED_NODE_STATUS);
    assert.equal(nodeVersionProblem("22.0.0"), null);
    assert.equal(nodeVersionProblem("24.1.0"), null);
  });

  describe("the CLI", function () {
    function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
      const run = spawnSync(OLD_NODE, [CLI, ...args], { encoding: "utf8", timeout: 30_000 });
      return { status: run.status, stdout: run.stdout, stderr: run.stderr };
    }
    const expected = () => `file-daemon: ${problem} [${UNSUPPORTED_NODE}]\n`;

    it("--help says it needs Node.js 22 on stderr and exits 1", function () {
      const run = cli(["--help"]);
      assert.equal(run.stderr, expected());
      assert.equal(run.stdout, "");
      assert.equal(run.status, 1);
    });

    it("submit says it needs Node.js 22 and exits 125, the command not run", function () {
      const ran = temp.file("ran");
      const run = cli(["submit", "-c", temp.file("commands"), "-r", temp.file("results"), "--", `touch ${ran}`]);
      assert.equal(run.stderr, expected());
      assert.equal(run.status, 125);
      assert.deepEqual(fs.readdirSync(temp.path), [], "nothing written");
    });

    it("the daemon, started as Node-RED starts it, says so on stderr (its log) and exits 1", function () {
      const log = temp.file("daemon.log");
      const run = cli([temp.file("results"), temp.file("commands"), "0.1", "--channels", "1", "--log", log, "--stop-grace", "5"]);
      assert.equal(run.stderr, expected());
      assert.equal(run.status, 1);
      assert.deepEqual(fs.readdirSync(temp.path), [], "nothing written, the --log file included");
      assert.deepEqual(processesMentioning(temp.path), []);
    });
  });

  describe(`Node-RED ${NR_PKG === "node-red" ? "4.1" : `(${NR_PKG})`}`, function () {
    let red: NodeRed | null = null;
    afterEach(async function () {
      if (red !== null && this.currentTest?.state === "failed") console.log(red.output());
      await red?.stop();
      red = null;
    });

    it("config node and log say it needs Node.js 22, exec nodes fail each message with UNSUPPORTED_NODE, no daemon starts", async function () {
      if (NR_PKG !== "node-red") this.skip(); // Node-RED 5 itself needs Node.js 22.9
      const userDir = temp.file("userdir");
      fs.mkdirSync(userDir);
      red = await startNodeRed(userDir, 60_000, OLD_NODE);
      const nodeRed = red;
      const message = `${problem}; then restart Node-RED`;
      const loadLine = `[error] [file-daemon] ${message}`;
      await waitFor("the load-time log line", () => nodeRed.output().includes(loadLine), 30_000);
      assert.doesNotMatch(nodeRed.output(), /Waiting for missing types|\[warn\] \[node-red\/file-daemon/);

      const ran = temp.file("ran");
      const fn = (name: string, label: string, expression: string) => ({
        id: `f-${name}`, type: "function", z: "t1", name, func: `node.log(${JSON.stringify(label + " ")} + JSON.stringify(${expression})); return null;`, outputs: 1, wires: [[]],
      });
      const flow = [
        { id: "t1", type: "tab", label: "old node" },
        { id: "fd1", type: "file-daemon", name: "old-node daemon", commandsFile: temp.file("commands"), resultsFile: temp.file("results"), mode: "managed", sleepTime: "0.1", channels: "1", allowlist: "", version: 2 },
        { id: "ex1", type: "file-daemon-exec", z: "t1", name: "old-node exec", daemon: "fd1", command: "", wires: [["f-out"]] },
        { id: "in1", type: "inject", z: "t1", props: [{ p: "payload" }], once: true, onceDelay: 0.5, repeat: "", payload: `touch ${ran}`, payloadType: "str", wires: [["ex1"]] },
        { id: "c1", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["f-caught"]] },
        fn("caught", "CAUGHT", "{ code: msg.error.code, message: msg.error.message, source: msg.error.source.id }"),
        fn("out", "OUTPUT", "msg.payload"),
      ];
      const deployed = await fetch(`${nodeRed.url}flows`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full" },
        body: JSON.stringify(flow),
      });
      assert.equal(deployed.status, 204, await deployed.text());

      // The config node's own line in the log.
      await waitFor("the config node's log line", () => nodeRed.output().includes(`[error] [file-daemon:old-node daemon] ${message}. This config node starts no daemon`), 20_000);

      // The message the inject node sent fails at once, as a Catch node sees it.
      const caughtLine = await waitFor("the Catch node's message", () => /\[function:caught\] CAUGHT (.*)/.exec(nodeRed.output())?.[1], 20_000);
      assert.deepEqual(JSON.parse(caughtLine), { code: UNSUPPORTED_NODE, message: `UnsupportedNodeError: ${message}`, source: "ex1" });

      // Both nodes' status, as the editor gets it over the comms websocket (retained).
      const statuses = await nodeStatuses(nodeRed.url, ["fd1", "ex1"]);
      const expected = { fill: "red", shape: "ring", text: "needs Node.js 22" };
      assert.deepEqual(statuses, { fd1: expected, ex1: expected });

      // Nothing started a daemon, nothing was written, nothing ran, no execa error.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.deepEqual(processesMentioning(temp.file("commands")), []);
      assert.deepEqual(fs.readdirSync(temp.path), ["userdir"]);
      assert.doesNotMatch(nodeRed.output(), /OUTPUT|TEXT_ENCODINGS|supervision|daemon (running|starting|down)/);
    });
  });
});

/** The latest status of each of `ids`, from Node-RED's comms websocket (status/<id> is retained). */
async function nodeStatuses(url: string, ids: string[]): Promise<Record<string, unknown>> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}comms`);
  const statuses: Record<string, unknown> = {};
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no status for ${ids.filter((id) => !(id in statuses)).join(", ")} within 15 s: ${JSON.stringify(statuses)}`)), 15_000);
      ws.addEventListener("error", () => reject(new Error("comms websocket error")));
      ws.addEventListener("open", () => ws.send(JSON.stringify({ subscribe: "status/#" })));
      ws.addEventListener("message", (event) => {
        for (const { topic, data } of JSON.parse(String(event.data)) as { topic: string; data: unknown }[]) {
          const id = topic.replace(/^status\//, "");
          if (topic.startsWith("status/") && ids.includes(id)) statuses[id] = data;
        }
        if (ids.every((id) => id in statuses)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    ws.close();
  }
  return statuses;
}
