import { onActivityChange } from "../file-daemon/daemon-activity";
import { liveConfigNode } from "../file-daemon/live-config-nodes";
import { readOverview } from "./sidebar-overview";
import type { PluginAPI } from "../node-red-types";

/** Viewing needs what seeing the flows needs; killing a command is a write, like pressing an inject button. */
const VIEW_PERMISSION = "flows.read";
const KILL_PERMISSION = "file-daemon.write";
/** What the sidebar's Kill button sends: a command stops as with msg.kill = true. */
const KILL_SIGNAL = "SIGTERM";
/** The comms topic that tells open editors to ask again; sent at most this often. */
const CHANGED_TOPIC = "file-daemon/changed";
const CHANGED_EVERY_MS = 250;
/** An overview read this recently, with no activity since, is served again (the daemon's files may be that much older). */
const SHARED_FOR_MS = 200;

/**
 * The runtime part of the editor's file-daemon sidebar: two admin endpoints, under Node-RED's
 * admin authentication, and a comms notice when something changed. Nothing is read until an
 * editor asks; the tab asks only while it is shown: on a notice, and every 10 s for
 * what only the daemon's files know (commands of other clients).
 */
function registerSidebar(RED: PluginAPI): void {
  RED.plugins.registerPlugin("file-daemon-sidebar", { type: "file-daemon-sidebar" });

  // A burst of 200 commands is a few notices, not 200: one timer at a time. The notice holds
  // nothing but its time (every comms client gets it, whatever its permissions): the tab asks
  // the endpoint, which checks them.
  let notice: NodeJS.Timeout | null = null;
  /** Counts activity changes: a cached overview from before the last one is not served. */
  let changes = 0;
  onActivityChange(() => {
    changes++;
    notice ??= setTimeout(() => {
      notice = null;
      // Node-RED drops a message whose data is falsy: the time is what it carries, nothing else.
      RED.comms.publish(CHANGED_TOPIC, { at: Date.now() }, false);
    }, CHANGED_EVERY_MS);
  });

  // Editors told of the same change ask at once: they share one reading of the files.
  let cached: { readonly at: number; readonly changes: number; readonly body: unknown } | null = null;
  RED.httpAdmin.get("/file-daemon/overview", RED.auth.needsPermission(VIEW_PERMISSION), (_req, res) => {
    const now = performance.now();
    if (cached === null || cached.changes !== changes || now - cached.at > SHARED_FOR_MS) cached = { at: now, changes, body: { daemons: readOverview(RED) } };
    res.json(cached.body);
  });

  RED.httpAdmin.post("/file-daemon/kill/:config/:key", RED.auth.needsPermission(KILL_PERMISSION), (req, res) => {
    const connection = liveConfigNode(req.params.config ?? "")?.connection ?? null;
    if (connection === null) {
      res.status(404).json({ error: "that file-daemon config node is not deployed any more" });
      return;
    }
    const answer = connection.activity.kill(req.params.key ?? "", KILL_SIGNAL);
    if ("sent" in answer) res.json({ killed: req.params.key, signal: answer.sent });
    else if ("already" in answer) res.status(409).json({ error: `a kill was asked for already (${answer.already}); only the first is sent`, signal: answer.already });
    else res.status(404).json({ error: "that command has ended already" });
  });
}

export = registerSidebar;
