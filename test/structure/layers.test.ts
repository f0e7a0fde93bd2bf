import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const SRC = path.resolve(__dirname, "..", "..", "..", "src");

/**
 * Which component may import which (README, "Design"). A component is the first folder under
 * src/ (protocol/io counts as its own); src/index.ts and src/nodes/* outside the node folders
 * belong to "nodes".
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  protocol: ["protocol"],
  "protocol/io": ["protocol", "protocol/io"],
  shared: ["shared", "protocol"],
  daemon: ["daemon", "protocol", "protocol/io", "shared"],
  client: ["client", "protocol", "protocol/io", "shared"],
  supervisor: ["supervisor", "protocol", "protocol/io", "shared"],
  cli: ["cli", "daemon", "client", "protocol", "protocol/io", "shared"],
  nodes: ["nodes", "client", "supervisor", "protocol", "protocol/io", "shared"],
  index: ["client", "daemon", "supervisor", "protocol", "protocol/io", "shared"],
};

/** The pure protocol touches no file, process or clock of its own: those live in protocol/io. */
const PURE_FORBIDS = /^node:(fs|child_process|net|worker_threads)$/;

function componentOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  if (rel.length === 1) return "index";
  if (rel[0] === "protocol" && rel[1] === "io") return "protocol/io";
  return rel[0] as string;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".ts"))
    .map((name) => path.join(dir, name));
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import|require)\s*\(?\s*"([^"]+)"/g)].map((match) => match[1] as string);
}

describe("layers: each component imports only what the design allows", () => {
  const files = sources(SRC);

  it("finds the components", () => {
    const found = new Set(files.map(componentOf));
    for (const name of Object.keys(MAY_IMPORT)) assert.ok(found.has(name), `src has no ${name}`);
  });

  for (const file of files) {
    const from = componentOf(file);
    it(`${path.relative(SRC, file)} (${from})`, () => {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith(".")) {
          if (from === "protocol") assert.doesNotMatch(spec, PURE_FORBIDS, `the pure protocol imports ${spec}: move that code to protocol/io`);
          continue;
        }
        const to = componentOf(path.resolve(path.dirname(file), spec));
        assert.ok(MAY_IMPORT[from]?.includes(to), `${from} may not import ${to} (${spec})`);
      }
    });
  }
});
