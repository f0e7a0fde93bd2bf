import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Debian's chromium package; CHROMIUM overrides the path. */
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/**
 * Headless Chromium through playwright-core, with a fresh profile (playwright's launch makes a
 * temporary --user-data-dir and removes it on close). Fails, never skips, when the browser is
 * missing: the editor test is part of `npm test`.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the editor test needs it. Install it with ` +
        "`sudo apt-get update && sudo apt-get install -y chromium` (or run scripts/ensure-test-deps.sh as root), " +
        "or set CHROMIUM to a Chromium/Chrome binary.",
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
}
