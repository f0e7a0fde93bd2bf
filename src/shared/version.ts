import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "./package-root";

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export const VERSION = packageVersion();
