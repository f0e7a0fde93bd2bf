import { FileDaemonError } from "../protocol/errors";
// The one Node.js version check, run before anything that needs a newer Node.js is loaded: by
// bin/file-daemon.js and by the node entry points nodes/*.js (through src/nodes/unsupported-node.ts).
//
// It must load and run on old Node.js (18, 20) itself: it imports only protocol/errors (plain classes) and uses no API they lack.

/** The oldest Node.js major version this package runs on (execa 10 needs 22); package.json engines says the same. */
export const MIN_NODE_MAJOR = 22;

/** The code of the error (msg.error.code for a Catch node) and the marker at the end of the CLI's line. */
export const UNSUPPORTED_NODE = "UNSUPPORTED_NODE";

/** Node status text (at most 20 characters). */
export const UNSUPPORTED_NODE_STATUS = `needs Node.js ${MIN_NODE_MAJOR}`;

/** What to do about it, from the Node-RED documentation's install and update script for Raspberry Pi and Debian. */
const UPGRADE_HINT =
  `update Node.js: on a Raspberry Pi (or other Debian, Ubuntu) the Node-RED install script does it, ` +
  `bash <(curl -sL https://github.com/node-red/linux-installers/releases/latest/download/install-update-nodered-deb) --node${MIN_NODE_MAJOR} ` +
  `(see https://nodered.org/docs/getting-started/raspberrypi); elsewhere install Node.js ${MIN_NODE_MAJOR} LTS or newer from https://nodejs.org`;

/**
 * Null when `version` (e.g. "20.20.2", default: this process's) is new enough, else the
 * sentence that says so and how to upgrade.
 */
export function nodeVersionProblem(version: string = process.versions.node): string | null {
  const major = Number(version.replace(/^v/, "").split(".")[0]);
  if (major >= MIN_NODE_MAJOR) return null;
  return `@file-daemon/node-red needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${version}); ${UPGRADE_HINT}`;
}

/** The error an exec node ends each message with on an old Node.js. */
export class UnsupportedNodeError extends FileDaemonError {
  constructor(message: string) {
    super("UNSUPPORTED_NODE", message);
    this.name = "UnsupportedNodeError";
  }
}

/**
 * For bin/file-daemon.js: on an old Node.js, says so on stderr and returns the exit status
 * (`submit` 125, as any failure of file-daemon itself there; everything else 1); null when the
 * Node.js is new enough.
 */
export function cliNodeVersionCheck(args: readonly string[]): number | null {
  const problem = nodeVersionProblem();
  if (problem === null) return null;
  process.stderr.write(`file-daemon: ${problem} [${UNSUPPORTED_NODE}]\n`);
  return args[0] === "submit" ? 125 : 1;
}
