import type { NodeAPI } from "../node-red-types";

/**
 * A managed daemon left running by a config node that was closed but not removed (redeploy,
 * flows restarted), waiting for the config node's next instance to adopt it.
 */
export interface Handover {
  /** Stops the daemon: nobody adopted it. */
  readonly stop: () => Promise<void>;
}

const pending = new Map<string, Handover>();
let listening: NodeAPI["events"] | null = null;

/** Keyed by the commands file: a successor on the same files adopts the daemon. */
export function leaveRunning(RED: NodeAPI, commandsFile: string, handover: Handover): void {
  pending.set(commandsFile, handover);
  if (listening === RED.events) return;
  listening = RED.events;
  RED.events.on("flows:started", stopUnclaimed);
}

/** Called by a new config node for its files: the daemon is its to adopt. */
export function claim(commandsFile: string): void {
  pending.delete(commandsFile);
}

/** After a deploy, a daemon whose files no config node uses any more (the paths were edited). */
function stopUnclaimed(): void {
  for (const [commandsFile, handover] of pending) {
    pending.delete(commandsFile);
    void handover.stop();
  }
}
