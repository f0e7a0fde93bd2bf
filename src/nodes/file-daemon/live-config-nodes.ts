import { activityChanged } from "./daemon-activity";
import type { DaemonConnection } from "./daemon-connection";

/** A file-daemon config node that runs now: its id (a subflow instance's own), name and connection. */
export interface LiveConfigNode {
  readonly id: string;
  readonly name: string;
  readonly connection: DaemonConnection;
}

const live = new Map<string, LiveConfigNode>();

/**
 * Every config node in this Node-RED that has started and not closed, the ones inside subflow
 * instances too (which the deployed flows do not list under their own ids): what the sidebar
 * shows and where its Kill goes.
 */
export function liveConfigNodes(): readonly LiveConfigNode[] {
  return [...live.values()];
}

export function liveConfigNode(id: string): LiveConfigNode | null {
  return live.get(id) ?? null;
}

/** Adds a started config node; the returned function removes it (only it: a redeploy may have started its successor under the same id). */
export function addLiveConfigNode(entry: LiveConfigNode): () => void {
  live.set(entry.id, entry);
  activityChanged();
  return () => {
    if (live.get(entry.id) === entry) live.delete(entry.id);
    activityChanged();
  };
}
