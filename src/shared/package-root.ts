import fs from "node:fs";
import path from "node:path";

const PACKAGE_NAME = "@file-daemon/node-red";

let root: string | null = null;

/**
 * The folder of this package (where package.json, bin/ and nodes/ are), found by walking up
 * from this file: the same answer from src/ under ts-node, from dist/src/, and installed.
 */
export function packageRoot(): string {
  if (root !== null) return root;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: unknown }).name === PACKAGE_NAME) return (root = dir);
    } catch {
      // No package.json here (or not ours): look further up.
    }
    if (path.dirname(dir) === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package above ${__dirname}`);
  }
}
