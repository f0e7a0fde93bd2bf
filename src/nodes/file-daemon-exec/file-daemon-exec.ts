import { connectionOf } from "../file-daemon/daemon-connection";
import { ALLOW_PAYLOAD_COMMAND_SETTING, payloadCommandAllowed } from "./exec-policy";
import { ExecRunner, type ExecDef } from "./exec-runner";
import type { Node, NodeAPI } from "../node-red-types";

/** Registers `file-daemon-exec`: runs msg.payload (or a fixed command) through a file daemon. */
function registerFileDaemonExec(RED: NodeAPI): void {
  function FileDaemonExecNode(this: Node, def: ExecDef): void {
    RED.nodes.createNode(this, def);
    startExecNode(RED, this, def);
  }
  // Exported so the editor can warn where the admin's policy applies (settings.js overrides it).
  RED.nodes.registerType("file-daemon-exec", FileDaemonExecNode, { settings: { [ALLOW_PAYLOAD_COMMAND_SETTING]: { value: true, exportable: true } } });
}

function startExecNode(RED: NodeAPI, node: Node, def: ExecDef): void {
  const daemon = connectionOf(def.daemon ? RED.nodes.getNode(def.daemon) : null);
  if (daemon === null) {
    const problem = "no usable file-daemon config node: select one in this node's Daemon setting (and check the log for why it failed)";
    node.status({ fill: "red", shape: "ring", text: RED._("file-daemon-exec.status.noDaemon") });
    node.error(problem);
    node.on("input", (_msg, _send, done) => done(new Error(problem)));
    return;
  }
  const allowed = payloadCommandAllowed(RED.settings);
  if (!allowed && (def.command ?? "").trim() === "") node.warn(`this node has no Command, and the administrator forbids msg.payload as the whole command (${ALLOW_PAYLOAD_COMMAND_SETTING} in settings.js): every message will fail until a Command is set`);
  const runner = new ExecRunner(node, def, daemon, { t: RED._, verbose: Boolean(RED.settings.verbose), payloadCommandAllowed: allowed });
  node.on("input", (msg, send, done) => runner.handle(msg, send, done));
  node.on("close", (_removed, done) => {
    void runner.close().then(done);
  });
}

export = registerFileDaemonExec;
