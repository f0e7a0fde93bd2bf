// Stand-ins for both node types on a Node.js too old for this package (see
// src/shared/node-version.ts). nodes/*.js use them instead of the real nodes, which load execa
// and the engine: the palette still shows both nodes, a deployed flow says what is wrong, no
// daemon is started, and every message fails at once with a code a Catch node can act on.
//
// Like node-version.ts this module must load and run on old Node.js: it imports only that file.
import { nodeVersionProblem, UNSUPPORTED_NODE_STATUS, UnsupportedNodeError } from "../shared/node-version";
import type { DoneFunction, Node, NodeDef, NodeMessage, NodeStatus, SendFunction } from "./node-red-types";

type NodeType = "file-daemon" | "file-daemon-exec";

/** The parts of Node-RED's API a stand-in uses. */
interface RedApi {
  readonly nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType(type: string, constructor: (this: Node, def: NodeDef) => void): void;
  };
  readonly log: { error(message: string): void };
}

const STATUS: NodeStatus = { fill: "red", shape: "ring", text: UNSUPPORTED_NODE_STATUS };

/**
 * Null when this Node.js is new enough (load the real node); else the registration function for
 * `type` that Node-RED calls instead. Checks the version once, when a node file is loaded.
 */
export function unsupportedNodeType(type: NodeType): ((RED: RedApi) => void) | null {
  const problem = nodeVersionProblem();
  if (problem === null) return null;
  const message = `${problem}; then restart Node-RED`;
  return (RED) => {
    if (type === "file-daemon") {
      // Once per Node-RED start (or palette install), whether or not a flow uses the nodes.
      RED.log.error(`[file-daemon] ${message}`);
      RED.nodes.registerType(type, function (this: Node, def: NodeDef) {
        RED.nodes.createNode(this, def);
        this.status(STATUS);
        this.error(`${message}. This config node starts no daemon`);
      });
    } else {
      RED.nodes.registerType(type, function (this: Node, def: NodeDef) {
        RED.nodes.createNode(this, def);
        this.status(STATUS);
        this.on("input", (_msg: NodeMessage, _send: SendFunction, done: DoneFunction) => done(new UnsupportedNodeError(message)));
      });
    }
  };
}
