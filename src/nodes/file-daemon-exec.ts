import { connectionOf } from "./daemon-connection";
import { ExecRunner, type ExecDef } from "./exec-runner";
import type { Node, NodeAPI } from "./node-red-types";

/** Registers `file-daemon-exec`: runs msg.payload (or a fixed command) through a file daemon. */
function registerFileDaemonExec(RED: NodeAPI): void {
  function FileDaemonExecNode(this: Node, def: ExecDef): void {
    RED.nodes.createNode(this, def);
    startExecNode(RED, this, def);
  }
  RED.nodes.registerType("file-daemon-exec", FileDaemonExecNode);
}

function startExecNode(RED: NodeAPI, node: Node, def: ExecDef): void {
  const daemon = connectionOf(def.daemon ? RED.nodes.getNode(def.daemon) : null);
  if (daemon === null) {
    const problem = "no usable file-daemon config node: select one in this node's Daemon setting (and check the log for why it failed)";
    node.status({ fill: "red", shape: "ring", text: "no daemon" });
    node.error(problem);
    node.on("input", (_msg, _send, done) => done(new Error(problem)));
    return;
  }
  const runner = new ExecRunner(node, def, daemon);
  node.on("input", (msg, send, done) => runner.handle(msg, send, done));
  node.on("close", (_removed, done) => {
    void runner.close().then(done);
  });
}

export = registerFileDaemonExec;
