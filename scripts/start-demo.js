#!/usr/bin/env node
// `npm start`: runs the Node-RED from devDependencies with this package loaded from the repo
// folder (nodes, icons, locales, examples), state in the git-ignored .node-red/, and on the
// first start the first example flow deployed. Ctrl-C stops Node-RED and then the managed
// daemons of the flows (a managed daemon outlives Node-RED on purpose, to be adopted by the next
// start; a demo should leave nothing behind). The example keeps its files in the default
// directory ($XDG_RUNTIME_DIR/file-daemon, or /dev/shm/file-daemon-<uid>). Environment: PORT (default 1880),
// NODE_RED_USER_DIR (default <repo>/.node-red), NR_PKG (node-red, or node-red-5).
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const repo = path.resolve(__dirname, "..");
const userDir = path.resolve(process.env.NODE_RED_USER_DIR || path.join(repo, ".node-red"));
const port = process.env.PORT || "1880";
const firstExample = path.join(repo, "examples", "01 - Run a command.json");
const flowFile = path.join(userDir, "flows.json");

fs.mkdirSync(userDir, { recursive: true });
if (!fs.existsSync(flowFile)) {
  // Example flows carry no tab node (the editor imports them into the current tab): add one.
  const nodes = JSON.parse(fs.readFileSync(firstExample, "utf8"));
  const tab = nodes.find((n) => n.z).z;
  const flow = [{ id: tab, type: "tab", label: "file daemon example", disabled: false, info: "" }, ...nodes];
  fs.writeFileSync(flowFile, JSON.stringify(flow, null, 4) + "\n");
  console.log(`Deployed "${path.basename(firstExample, ".json")}" to ${flowFile}`);
}

const red = require.resolve(`${process.env.NR_PKG || "node-red"}/red.js`, { paths: [repo] });
console.log(`Starting Node-RED with @file-daemon/node-red from ${repo}`);
console.log(`Editor: http://localhost:${port}/   (Ctrl-C stops)`);
const child = spawn(process.execPath, [red,
  "--userDir", userDir,
  "--port", port,
  "--define", `nodesDir=${repo}`,
  "--define", "flowFile=flows.json",
  "--define", "telemetry.enabled=false",
  "--define", "editorTheme.tours=false",
], { stdio: "inherit" });

// Ctrl-C reaches Node-RED directly (same process group); forward a plain `kill` too.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("exit", async (code, signal) => {
  await stopManagedDaemons();
  process.exit(code ?? (signal ? 1 : 0));
});

async function stopManagedDaemons() {
  let flows;
  try {
    flows = JSON.parse(fs.readFileSync(flowFile, "utf8"));
  } catch {
    return;
  }
  const { stopLiveDaemon } = require(path.join(repo, "dist/src/supervisor/daemon-process.js"));
  const { daemonFiles } = require(path.join(repo, "dist/src/protocol/paths.js"));
  for (const n of flows) {
    if (n.type !== "file-daemon" || (n.mode || "managed") !== "managed") continue;
    // Empty paths (the examples): commands and results in the default directory, resolved as
    // Node-RED did (same environment, same settings.js).
    const dir = !n.commandsFile && !n.resultsFile ? defaultDirectory() : null;
    const commands = dir === null ? n.commandsFile : path.join(dir, "commands");
    const results = dir === null ? n.resultsFile : path.join(dir, "results");
    if (!commands || !results) continue;
    const pid = await stopLiveDaemon(daemonFiles(commands, results)).catch(() => null);
    if (pid !== null) console.log(`Stopped the daemon for ${commands} (pid ${pid})`);
  }
}

function defaultDirectory() {
  const { resolveDefaultDirectory } = require(path.join(repo, "dist/src/shared/default-directory.js"));
  let configured;
  try {
    configured = require(path.join(userDir, "settings.js")).fileDaemonDefaultDirectory;
  } catch {
    // No settings.js (Node-RED writes one on its first start): no admin's directory.
  }
  try {
    return resolveDefaultDirectory({ configured });
  } catch {
    return null;
  }
}
