import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import helper from "node-red-node-test-helper";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { daemonFiles, type DaemonFiles } from "../../src/protocol/paths";
import { waitFor } from "../helpers/wait-for";
import { englishTranslator } from "./locale";

type NodeModule = (RED: never) => void;
export type Msg = Record<string, unknown>;
export type FlowNode = Record<string, unknown> & { id: string; type: string };

const REPO = path.resolve(__dirname, "..", "..", "..");
const load = createRequire(__filename);

/** NR_PKG=node-red-5 runs the same tests on Node-RED 5 (installed under that alias). */
export const NR_PATH = load.resolve(process.env.NR_PKG || "node-red");
helper.init(NR_PATH);
export { helper };

/**
 * Our nodes as Node-RED loads them: through the shims that package.json names, with RED._
 * reading our en-US locale files as Node-RED does (the helper's RED._ returns the key).
 */
const translate = englishTranslator();
function withLocale(register: NodeModule): NodeModule {
  return (RED: never) => {
    (RED as { _: unknown })._ = translate;
    register(RED);
  };
}
export const OUR_NODES: NodeModule[] = [withLocale(load(path.join(REPO, "nodes", "file-daemon.js")) as NodeModule), withLocale(load(path.join(REPO, "nodes", "file-daemon-exec.js")) as NodeModule)];

/** A core node of the Node-RED under test, e.g. "function/90-exec.js". */
export function coreNode(file: string): NodeModule {
  return load(load.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(NR_PATH)] })) as NodeModule;
}

export interface TestFiles {
  readonly dir: string;
  readonly commands: string;
  readonly results: string;
  readonly daemon: DaemonFiles;
  file(name: string): string;
}

/**
 * A private directory per test, and cleanups run after it in reverse order: flows unloaded
 * first, then daemons stopped (a managed daemon outlives its flow by design), then the files.
 */
type Cleanup = () => unknown; // awaited: sync steps and async ones alike

export function useTestFiles(): { readonly current: TestFiles; onCleanup(step: Cleanup): void } {
  let files: TestFiles | null = null;
  let steps: Cleanup[] = [];
  beforeEach(() => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-nodes-"));
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    files = { dir, commands, results, daemon: daemonFiles(commands, results), file: (name) => path.join(dir, name) };
  });
  afterEach(async function () {
    this.timeout(30_000);
    const current = files as TestFiles;
    await helper.unload();
    for (const step of steps.reverse()) await step();
    steps = [];
    await stopLiveDaemon(current.daemon);
    rmSync(current.dir, { recursive: true, force: true });
  });
  return {
    get current() {
      if (files === null) throw new Error("useTestFiles: no test is running");
      return files;
    },
    onCleanup: (step) => void steps.push(step),
  };
}

export interface FlowOptions {
  readonly mode?: "managed" | "external";
  readonly channels?: number;
  readonly sleepTime?: number;
  readonly exec?: Record<string, unknown>;
}

/**
 * daemon config → exec → "out"; a Catch node for the tab → "caught". Nodes on a tab need x
 * and y: Node-RED takes one without them for a config node.
 */
export function execFlow(files: TestFiles, options: FlowOptions = {}): FlowNode[] {
  return [
    { id: "tab", type: "tab", label: "test" },
    {
      id: "daemon",
      type: "file-daemon",
      commandsFile: files.commands,
      resultsFile: files.results,
      sleepTime: options.sleepTime ?? 0.1,
      mode: options.mode ?? "external",
      channels: options.channels ?? 1,
    },
    { id: "exec", type: "file-daemon-exec", z: "tab", x: 300, y: 100, daemon: "daemon", command: "", appendPayload: false, timeout: 0, capture: false, failOnNonZero: false, ...options.exec, wires: [["out"]] },
    { id: "out", type: "helper", z: "tab", x: 500, y: 100, wires: [] },
    { id: "catch", type: "catch", z: "tab", x: 100, y: 200, scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "tab", x: 300, y: 200, wires: [] },
  ];
}

export function node(id: string): NonNullable<ReturnType<typeof helper.getNode>> {
  const found = helper.getNode(id);
  if (found === null) throw new Error(`no node ${id} in the flow`);
  return found;
}

/** Every message a helper node receives, in order. */
export class Inbox {
  readonly messages: Msg[] = [];

  constructor(id: string) {
    node(id).on("input", (msg: Msg) => this.messages.push(msg));
  }

  /** Waits for the message number `index` (0-based). */
  nth(index: number, ms = 10_000): Promise<Msg> {
    return waitFor(`message #${index + 1}`, () => this.messages[index], ms);
  }
}

interface StatusSpy {
  getCalls(): { thisValue: unknown; args: [{ text?: string; fill?: string; shape?: string }] }[];
}

/** Every status a node has shown (the test helper spies on Node.prototype.status). */
export function statuses(id: string): { text?: string; fill?: string; shape?: string }[] {
  const target = node(id);
  const spy = target.status as StatusSpy;
  return spy
    .getCalls()
    .filter((call) => call.thisValue === target)
    .map((call) => call.args[0]);
}

export function lastStatus(id: string): string | undefined {
  return statuses(id).at(-1)?.text;
}

export function waitForStatus(id: string, text: string, ms = 10_000): Promise<boolean> {
  return waitFor(`status "${text}" on ${id} (last: ${String(lastStatus(id))})`, () => lastStatus(id) === text, ms);
}

export { waitFor };
