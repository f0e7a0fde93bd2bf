import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { daemonFiles } from "../../src/protocol/paths";
import { freePort, NR_PKG, REPO } from "../browser/node-red-process";

// What a user gets from the npm registry: `npm pack` of a clean copy of the repo (no dist/: the
// prepack script must build it), installed into a fresh Node-RED user directory the way the
// palette manager does (`npm install <tarball>`, dependencies from the registry), then a real
// Node-RED started on that directory runs example 1 as shipped in the package.

const PACKAGE = "@file-daemon/node-red";
const EXAMPLE = "01 - Run a command.json";
/** Top-level entries of the repo that a clean checkout does not have. */
const NOT_IN_CHECKOUT = new Set([".git", "node_modules", "dist", ".node-red", "test-output"]);

interface Ran {
  code: number | null;
  output: string;
}

/** The environment without what the outer `npm test` set (npm_config_*, npm_package_*, ...). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key) && key !== "INIT_CWD") env[key] = value;
  return { ...env, ...extra };
}

/**
 * Runs a command in a process group of its own; on timeout kills the whole group (npm's scripts
 * and their children too) and rejects. Resolves with the exit code and everything it printed.
 */
function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; ms: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? cleanEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`${command} ${args.join(" ")} did not finish within ${options.ms} ms:\n${output}`));
    }, options.ms);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function mustRun(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; ms: number }): Promise<string> {
  const result = await run(command, args, options);
  assert.equal(result.code, 0, `${command} ${args.join(" ")} exited ${result.code}:\n${result.output}`);
  return result.output;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** The docs/images/*.png that some page (Markdown or the editor's HTML) refers to. */
function referencedImages(): string[] {
  const pages: string[] = [path.join(REPO, "README.md")];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (/\.(md|html)$/.test(entry.name)) pages.push(file);
    }
  };
  for (const dir of ["docs", "nodes", "systemd", "examples"]) walk(path.join(REPO, dir));
  const text = pages.map((page) => readFileSync(page, "utf8")).join("\n");
  return readdirSync(path.join(REPO, "docs", "images"))
    .filter((name) => name.endsWith(".png") && text.includes(`images/${name}`))
    .map((name) => `docs/images/${name}`)
    .sort();
}

describe("the npm package, installed into a fresh Node-RED", function () {
  this.timeout(60_000);
  // Each step builds on the one before and says so when that one failed. (Not this.bail(): mocha
  // then skips the whole suite, silently, after a failure anywhere earlier in the run.)

  let tmp = "";
  let tarball = "";
  let userDir = "";
  /** Node-RED's XDG_RUNTIME_DIR: example 1 as shipped keeps its files in <it>/file-daemon. */
  let runtimeDir = "";
  let nodeRed: ChildProcess | undefined;
  let nodeRedExited: Promise<void> = Promise.resolve();
  let output = "";
  let url = "";
  const installed = () => path.join(userDir, "node_modules", ...PACKAGE.split("/"));
  const defaultDir = () => path.join(runtimeDir, "file-daemon");
  const commandsFile = () => path.join(defaultDir(), "commands");
  const resultsFile = () => path.join(defaultDir(), "results");

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "file-daemon-pack-"));
    runtimeDir = path.join(tmp, "xdg");
    mkdirSync(runtimeDir, { mode: 0o700 });
  });

  after(async function () {
    this.timeout(30_000);
    if (nodeRed && nodeRed.exitCode === null && nodeRed.signalCode === null) {
      killGroup(nodeRed, "SIGTERM");
      const timer = setTimeout(() => nodeRed && killGroup(nodeRed), 15_000);
      await nodeRedExited;
      clearTimeout(timer);
    }
    // A managed daemon outlives a Node-RED that did not stop it (60 s): stop it now.
    if (runtimeDir) await stopLiveDaemon(daemonFiles(commandsFile(), resultsFile())).catch(() => null);
    if (tmp) rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  });

  it("packs a clean checkout: prepack builds dist/, with LICENSE and systemd/, without tests or unreferenced images", async function () {
    this.timeout(120_000);
    const checkout = path.join(tmp, "checkout");
    cpSync(REPO, checkout, {
      recursive: true,
      filter: (source) => {
        const relative = path.relative(REPO, source);
        return !NOT_IN_CHECKOUT.has(relative.split(path.sep)[0] ?? "") && !relative.endsWith(".tgz");
      },
    });
    symlinkSync(realpathSync(path.join(REPO, "node_modules")), path.join(checkout, "node_modules"), "dir");
    const packs = path.join(tmp, "packs");
    mkdirSync(packs);
    await mustRun("npm", ["pack", "--pack-destination", packs], { cwd: checkout, ms: 110_000 });
    const made = readdirSync(packs).filter((name) => name.endsWith(".tgz"));
    assert.equal(made.length, 1, `npm pack made ${made.join(", ") || "no tarball"}`);
    tarball = path.join(packs, made[0] ?? "");

    const listing = await mustRun("tar", ["-tzf", tarball], { cwd: tmp, ms: 10_000 });
    const files = listing.split("\n").filter(Boolean).map((line) => line.replace(/^package\//, ""));
    const pkg = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as { main: string; bin: Record<string, string>; "node-red": { nodes: Record<string, string> } };
    for (const file of ["LICENSE", "README.md", "package.json", pkg.main, ...Object.values(pkg.bin), ...Object.values(pkg["node-red"].nodes),
      "dist/src/nodes/file-daemon/file-daemon.js", "dist/src/nodes/file-daemon-exec/file-daemon-exec.js", `examples/${EXAMPLE}`, "python/file_daemon.py",
      "systemd/file-daemon.service", "systemd/README.md", "docs/PROTOCOL.md"]) {
      assert.ok(files.includes(file.replace(/^\.\//, "")), `the package lacks ${file}; it holds:\n${files.join("\n")}`);
    }
    assert.deepEqual(files.filter((file) => /^dist\/(test|bench)\//.test(file)), [], "the package ships compiled tests or benchmarks");
    assert.deepEqual(files.filter((file) => file.startsWith("examples/") && !file.endsWith(".json")), [], "examples/ holds something that is not a flow");
    assert.deepEqual(files.filter((file) => file.startsWith("docs/images/")).sort(), referencedImages(), "the package's screenshots are not exactly the referenced ones");
    const license = readFileSync(path.join(REPO, "LICENSE"), "utf8");
    assert.match(license, /^MIT License\n\nCopyright \(c\) 2026 file-daemon\n/);
  });

  it("installs from the tarball into a fresh user directory, as the palette manager does", async function () {
    this.timeout(120_000);
    assert.ok(tarball, "no tarball: packing failed");
    userDir = path.join(tmp, "node-red");
    mkdirSync(userDir);
    writeFileSync(path.join(userDir, "package.json"), JSON.stringify({ name: "node-red-project", description: "A Node-RED Project", version: "0.0.1", private: true }, null, 4));
    await mustRun("npm", ["install", "--no-audit", "--no-fund", "--no-update-notifier", tarball], { cwd: userDir, ms: 110_000 });
    const manifest = JSON.parse(readFileSync(path.join(installed(), "package.json"), "utf8")) as { name: string };
    assert.equal(manifest.name, PACKAGE);
  });

  it("starts Node-RED on it, loads both nodes without errors", async function () {
    assert.ok(userDir && existsSync(installed()), "the package is not installed: the step before failed");
    const load = createRequire(path.join(REPO, "package.json"));
    const red = load.resolve(`${NR_PKG}/red.js`);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, [red,
      "-u", userDir,
      "-p", String(port),
      "--define", "uiHost=127.0.0.1",
      "--define", "flowFile=flows.json",
      "--define", "telemetry.enabled=false",
      "--define", "editorTheme.tours=false",
    ], { cwd: userDir, env: cleanEnv({ XDG_RUNTIME_DIR: runtimeDir }), detached: true, stdio: ["ignore", "pipe", "pipe"] });
    nodeRed = child;
    nodeRedExited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const deadline = performance.now() + 40_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) assert.fail(`Node-RED exited (${child.exitCode ?? child.signalCode}) before serving:\n${output}`);
      if (await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false)) break;
      if (performance.now() > deadline) assert.fail(`Node-RED did not serve ${url} within 40 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const response = await fetch(`${url}/nodes`, { headers: { Accept: "application/json" } });
    assert.equal(response.status, 200);
    const sets = (await response.json()) as { module: string; types: string[]; enabled: boolean; err?: string }[];
    const ours = sets.filter((set) => set.module === PACKAGE);
    assert.deepEqual(ours.flatMap((set) => set.types).sort(), ["file-daemon", "file-daemon-exec"], `Node-RED did not load ${PACKAGE}:\n${output}`);
    for (const set of ours) assert.ok(set.enabled && !set.err, `${set.types.join(", ")}: ${set.err ?? "disabled"}\n${output}`);
    assert.doesNotMatch(output, /Cannot find module/);
  });

  it("deploys example 1 from the installed package; its daemon serves from the default directory; both injects report their exit codes", async function () {
    this.timeout(60_000);
    assert.ok(url && nodeRed?.exitCode === null, "Node-RED is not running: the step before failed");
    const nodes = JSON.parse(readFileSync(path.join(installed(), "examples", EXAMPLE), "utf8")) as Record<string, unknown>[];
    const tab = nodes.find((node) => typeof node.z === "string")?.z as string;
    for (const node of nodes) {
      // As shipped: no paths, so the files go in the default directory ($XDG_RUNTIME_DIR/file-daemon here).
      if (node.type === "file-daemon") assert.deepEqual([node.commandsFile, node.resultsFile], ["", ""]);
      if (node.type === "debug") node.console = true; // its messages go to Node-RED's log, read here
    }
    assert.equal(existsSync(defaultDir()), false);
    const injects = nodes.filter((node) => node.type === "inject").map((node) => ({ id: node.id as string, payload: node.payload as string }));
    assert.deepEqual(injects.map((inject) => inject.payload), ["uptime", "exit 3"]);
    const flow = [{ id: tab, type: "tab", label: "example 1", disabled: false, info: "" }, ...nodes];
    const deploy = await fetch(`${url}/flows`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Node-RED-API-Version": "v1", "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(flow),
    });
    assert.equal(deploy.status, 204, `deploy: ${deploy.status} ${await deploy.text()}`);

    // The managed daemon, seen through the installed package's own command line (node_modules/.bin).
    const bin = path.join(userDir, "node_modules", ".bin", "file-daemon");
    const statusDeadline = performance.now() + 20_000;
    for (;;) {
      const status = await run(bin, ["status", "-c", commandsFile(), "-r", resultsFile()], { cwd: userDir, ms: 10_000 });
      if (status.code === 0) break;
      if (performance.now() > statusDeadline) assert.fail(`file-daemon status still says (${status.code}): ${status.output}\nNode-RED:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal((statSync(defaultDir()).mode & 0o777).toString(8), "700", "the default directory is private");

    const expected: Record<string, string> = { uptime: "0", "exit 3": "3" };
    for (const inject of injects) {
      const before = output.length;
      const response = await fetch(`${url}/inject/${inject.id}`, { method: "POST" });
      assert.equal(response.status, 200, `inject ${inject.payload}: ${response.status}`);
      const deadline = performance.now() + 20_000;
      let seen: string | undefined;
      while (seen === undefined) {
        seen = /\[debug:exit code\] (.*)/.exec(output.slice(before))?.[1]?.trim();
        if (seen !== undefined) break;
        if (performance.now() > deadline) assert.fail(`no debug message for "${inject.payload}" within 20 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(seen, expected[inject.payload], `"${inject.payload}" reported ${seen}`);
    }
  });

  it("stops the daemon when the flow is removed, and Node-RED cleanly; the Python client imports from the installed package", async function () {
    this.timeout(40_000);
    assert.ok(url && nodeRed?.exitCode === null, "Node-RED is not running: a step before failed");
    const undeploy = await fetch(`${url}/flows`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Node-RED-API-Version": "v1", "Node-RED-Deployment-Type": "full" },
      body: "[]",
    });
    assert.equal(undeploy.status, 204);
    const bin = path.join(userDir, "node_modules", ".bin", "file-daemon");
    const deadline = performance.now() + 20_000;
    for (;;) {
      const status = await run(bin, ["status", "-c", commandsFile(), "-r", resultsFile()], { cwd: userDir, ms: 10_000 });
      if (status.code === 3) break;
      if (performance.now() > deadline) assert.fail(`the daemon still serves after the flow was removed (${status.code}): ${status.output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (nodeRed) {
      killGroup(nodeRed, "SIGTERM");
      await nodeRedExited;
    }
    const python = path.join(installed(), "python");
    await mustRun("python3", ["-c", "from file_daemon import submit_command, FileDaemonError"], { cwd: tmp, env: cleanEnv({ PYTHONPATH: python }), ms: 10_000 });
  });
});
