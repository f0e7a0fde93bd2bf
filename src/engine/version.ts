import { readFileSync } from "node:fs";
import path from "node:path";

function packageVersion(): string {
  try {
    const file = path.join(__dirname, "..", "..", "..", "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export const VERSION = packageVersion();
