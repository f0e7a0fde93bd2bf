#!/usr/bin/env node
// `prestart` and `pretest`: runs `npm ci` when node_modules is missing or does not match
// package-lock.json, so that `npm start` and `npm test` work on a fresh clone by themselves.
// Runs on whatever Node the system has (the project's Node 22 is itself a devDependency, so it
// may not be installed yet): plain CommonJS, no dependencies. Quick when nothing is needed: it
// compares package-lock.json with the record npm keeps of what it installed
// (node_modules/.package-lock.json, the "hidden lockfile").
//
// Stale means: a package recorded in one but not the other, or recorded differently. Packages of
// the lockfile that npm leaves out on this machine (optional ones for other platforms) are not
// counted as missing. A node_modules that is a symlink (shared with another checkout) is never
// reinstalled over: it is reported, and the script goes on.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const repo = path.resolve(__dirname, "..");
const lockFile = path.join(repo, "package-lock.json");
const modules = path.join(repo, "node_modules");
const hiddenLockFile = path.join(modules, ".package-lock.json");

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

/** JSON with object keys sorted, so that key order does not count as a difference. */
function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

/** Why node_modules must be (re)installed, or null when it matches the lockfile. */
function staleness() {
  const lock = readJson(lockFile);
  if (!lock || !lock.packages) return null; // no lockfile to install from: leave it to npm
  if (!fs.existsSync(modules)) return "node_modules is missing";
  const hidden = readJson(hiddenLockFile);
  if (!hidden || !hidden.packages) return "node_modules/.package-lock.json is missing (not installed by npm 7+?)";
  const wanted = lock.packages;
  const have = hidden.packages;
  for (const key of Object.keys(wanted)) {
    if (key === "") continue; // the project itself
    const entry = wanted[key];
    if (!(key in have)) {
      if (entry.optional || entry.devOptional || entry.peer) continue; // skipped on this platform
      return `${key} is not installed`;
    }
    if (canonical(entry) !== canonical(have[key])) return `${key} differs from package-lock.json`;
  }
  for (const key of Object.keys(have)) {
    if (!(key in wanted)) return `${key} is installed but not in package-lock.json`;
  }
  return null;
}

const why = staleness();
if (why === null) process.exit(0);

if (fs.existsSync(modules) && fs.lstatSync(modules).isSymbolicLink()) {
  console.error(`ensure-install: ${why}, but node_modules is a symlink (to ${fs.realpathSync(modules)}): not reinstalling over it; run \`npm ci\` where it lives`);
  process.exit(0);
}

console.log(`ensure-install: ${why}: running npm ci`);
if (Number(process.versions.node.split(".")[0]) < 22) {
  console.log(`ensure-install: npm runs on this system's Node ${process.version} and may warn EBADENGINE; the project's Node 22 is one of the packages it installs`);
}
// The npm that runs this script (npm_execpath), not node_modules/.bin/npm, which npm ci removes.
const npmCli = process.env.npm_execpath;
const [command, args] = npmCli && /\.[cm]?js$/.test(npmCli)
  ? [process.execPath, [npmCli, "ci", "--no-audit", "--no-fund"]]
  : ["npm", ["ci", "--no-audit", "--no-fund"]];
const result = spawnSync(command, args, { cwd: repo, stdio: "inherit" });
if (result.error) {
  console.error(`ensure-install: could not run npm ci: ${result.error.message}`);
  process.exit(1);
}
if (result.status !== 0) {
  console.error(`ensure-install: npm ci failed (${result.status ?? result.signal})`);
  process.exit(result.status || 1);
}
const after = staleness();
if (after !== null) console.error(`ensure-install: after npm ci, still: ${after}`);
