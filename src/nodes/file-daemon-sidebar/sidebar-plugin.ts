import { connectionOf } from "../file-daemon/daemon-connection";
import { readOverview } from "./sidebar-overview";
import type { PluginAPI } from "../node-red-types";

/** Viewing needs what seeing the flows needs; killing a command is a write, like pressing an inject button. */
const VIEW_PERMISSION = "flows.read";
const KILL_PERMISSION = "file-daemon.write";
/** What the sidebar's Kill button sends: a command stops as with msg.kill = true. */
const KILL_SIGNAL = "SIGTERM";

/**
 * The runtime part of the editor's file-daemon sidebar: two admin endpoints, under Node-RED's
 * admin authentication. Nothing runs until the editor asks; the tab asks only while it is shown.
 */
function registerSidebar(RED: PluginAPI): void {
  RED.plugins.registerPlugin("file-daemon-sidebar", { type: "file-daemon-sidebar" });

  RED.httpAdmin.get("/file-daemon/overview", RED.auth.needsPermission(VIEW_PERMISSION), (_req, res) => {
    res.json({ daemons: readOverview(RED) });
  });

  RED.httpAdmin.post("/file-daemon/kill/:config/:key", RED.auth.needsPermission(KILL_PERMISSION), (req, res) => {
    const { config = "", key = "" } = req.params;
    const connection = connectionOf(RED.nodes.getNode(config));
    if (connection === null) {
      res.status(404).json({ error: `no file-daemon config node ${config} is deployed` });
      return;
    }
    if (!connection.activity.kill(key, KILL_SIGNAL)) {
      res.status(404).json({ error: "that command has ended already" });
      return;
    }
    res.json({ killed: key, signal: KILL_SIGNAL });
  });
}

export = registerSidebar;
