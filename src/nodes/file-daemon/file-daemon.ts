import { FileDaemonError } from "../../protocol/errors";
import { ALLOWLIST_VERSION } from "../../shared/allowlist";
import { migrateAllowlist } from "./allowlist";
import { ConfigDaemon } from "./config-daemon";
import { addLiveConfigNode } from "./live-config-nodes";
import type { FileDaemonConfigNode } from "./daemon-connection";
import { parseDaemonSettings, type FileDaemonDef } from "./daemon-settings";
import { DEFAULT_DIRECTORY_SETTING, RESOLVED_DIRECTORY_SETTING } from "../file-daemon-exec/exec-policy";
import { resolveDefaultDirectory } from "../../shared/default-directory";
import type { Node, NodeAPI } from "../node-red-types";

/** Registers the `file-daemon` config node: files, sleep time, channels, managed or external. */
function registerFileDaemon(RED: NodeAPI): void {
  function FileDaemonNode(this: Node, def: FileDaemonDef): void {
    RED.nodes.createNode(this, def);
    startConfigNode(RED, this, def);
  }
  // The editor pre-fills new config nodes' files in the admin's directory (settings.js sets it),
  // and shows where a node with empty paths keeps them ("" when the admin's setting is invalid:
  // the config node says why when it starts).
  let resolved = "";
  try {
    resolved = defaultDirectory(RED);
  } catch {
    // Reported by each config node that needs it.
  }
  RED.nodes.registerType("file-daemon", FileDaemonNode, {
    settings: {
      [DEFAULT_DIRECTORY_SETTING]: { value: "", exportable: true },
      [RESOLVED_DIRECTORY_SETTING]: { value: resolved, exportable: true },
    },
  });
}

/** Where a config node with empty paths keeps its files (resolved anew each time: nothing is made here). */
function defaultDirectory(RED: NodeAPI): string {
  return resolveDefaultDirectory({ configured: RED.settings[DEFAULT_DIRECTORY_SETTING] });
}

function startConfigNode(RED: NodeAPI, node: FileDaemonConfigNode, def: FileDaemonDef): void {
  let daemon: ConfigDaemon;
  try {
    daemon = new ConfigDaemon(RED, node, parseDaemonSettings(migrate(node, def), () => defaultDirectory(RED)));
  } catch (err) {
    // Exec nodes then find no connection and report "no daemon".
    node.error(`this file-daemon config node cannot be used: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  node.fileDaemon = daemon;
  const removeLive = addLiveConfigNode({ id: node.id, name: def.name ?? "", connection: daemon });
  node.on("close", (removed, done) => {
    removeLive();
    daemon.close(removed).then(done, (err: unknown) => {
      node.error(`closing: ${err instanceof Error ? err.message : String(err)}`);
      done();
    });
  });
}

/**
 * A config node saved before `version` existed (version 1) keeps a defined meaning: its
 * allowlist is rewritten to the current pattern syntax (see migrateAllowlist) and the node says
 * once, at its start, what was rewritten. The editor does the same when the node is opened, and
 * saves it with the current version.
 */
function migrate(node: FileDaemonConfigNode, def: FileDaemonDef): FileDaemonDef {
  const version = configVersion((def as { version?: unknown }).version);
  if (version === ALLOWLIST_VERSION || typeof def.allowlist !== "string") return def;
  const { text, changed } = migrateAllowlist(def.allowlist, version);
  if (changed.length > 0) {
    const lines = changed.map(({ from, to }) => `${JSON.stringify(from)} → ${JSON.stringify(to)}`).join(", ");
    node.warn(`allowlist saved without a version: read in the version ${ALLOWLIST_VERSION} syntax as ${lines} (a * stays within one word and path segment, ** is any further arguments, no wildcard matches ".."). Open this config node and click Done to save it that way`);
  }
  return { ...def, allowlist: text };
}

function configVersion(value: unknown): number {
  if (value === undefined || value === null || value === "") return 1;
  const version = typeof value === "string" ? Number(value) : value;
  if (version === 1 || version === ALLOWLIST_VERSION) return version;
  throw new FileDaemonError("BAD_OPTION", `version ${JSON.stringify(value)} is unknown: this node understands 1 and ${ALLOWLIST_VERSION}; update @file-daemon/node-red`);
}

export = registerFileDaemon;
