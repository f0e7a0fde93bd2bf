#!/usr/bin/env node
// `npm start`: runs the Node-RED from devDependencies with this package loaded from the repo
// folder (nodes, icons, locales, examples), state in the git-ignored .node-red/, and on the
// first start the first example flow deployed. Environment: PORT (default 1880),
// NODE_RED_USER_DIR (default <repo>/.node-red), NR_PKG (node-red, or node-red-5).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const repo = path.resolve(__dirname, "..");
const userDir = path.resolve(process.env.NODE_RED_USER_DIR || path.join(repo, ".node-red"));
const port = process.env.PORT || "1880";
const firstExample = path.join(repo, "examples", "01 - Run a command.json");

fs.mkdirSync(userDir, { recursive: true });
const flowFile = path.join(userDir, "flows.json");
if (!fs.existsSync(flowFile)) {
  // Example flows carry no tab node (the editor imports them into the current tab): add one.
  const nodes = JSON.parse(fs.readFileSync(firstExample, "utf8"));
  const tab = nodes.find((n) => n.z)?.z;
  const flow = [{ id: tab, type: "tab", label: "file daemon example", disabled: false, info: "" }, ...nodes];
  fs.writeFileSync(flowFile, JSON.stringify(flow, null, 4) + "\n");
  console.log(`Deployed ${path.relative(repo, firstExample)} to ${path.relative(repo, flowFile) || flowFile}`);
}

const red = require.resolve(`${process.env.NR_PKG || "node-red"}/red.js`, { paths: [repo] });
process.argv = [process.argv[0], red,
  "--userDir", userDir,
  "--port", port,
  "--define", `nodesDir=${repo}`,
  "--define", "flowFile=flows.json",
  "--define", "telemetry.enabled=false",
  "--define", "editorTheme.tours=false",
];
console.log(`Starting Node-RED with @file-daemon/node-red from ${repo}`);
console.log(`Editor: http://localhost:${port}/   (Ctrl-C stops)`);
require(red);
