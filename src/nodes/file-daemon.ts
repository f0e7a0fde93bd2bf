import { ConfigDaemon } from "./config-daemon";
import type { FileDaemonConfigNode } from "./daemon-connection";
import { parseDaemonSettings, type FileDaemonDef } from "./daemon-settings";
import type { Node, NodeAPI } from "./node-red-types";

/** Registers the `file-daemon` config node: files, sleep time, channels, managed or external. */
function registerFileDaemon(RED: NodeAPI): void {
  function FileDaemonNode(this: Node, def: FileDaemonDef): void {
    RED.nodes.createNode(this, def);
    startConfigNode(RED, this, def);
  }
  RED.nodes.registerType("file-daemon", FileDaemonNode);
}

function startConfigNode(RED: NodeAPI, node: FileDaemonConfigNode, def: FileDaemonDef): void {
  let daemon: ConfigDaemon;
  try {
    daemon = new ConfigDaemon(RED, node, parseDaemonSettings(def));
  } catch (err) {
    // Exec nodes then find no connection and report "no daemon".
    node.error(`this file-daemon config node cannot be used: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  node.fileDaemon = daemon;
  node.on("close", (removed, done) => {
    daemon.close(removed).then(done, (err: unknown) => {
      node.error(`closing: ${err instanceof Error ? err.message : String(err)}`);
      done();
    });
  });
}

export = registerFileDaemon;
