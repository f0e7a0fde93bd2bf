import { readChannels, isIdle, type ChannelOverview } from "../../client/channel-overview";
import { readLiveDaemon } from "../../protocol/io/live-daemon";
import { daemonFiles } from "../../protocol/paths";
import { encodeFileMode, type PublishedInfo } from "../../protocol/daemon-info";
import type { DaemonConnection } from "../file-daemon/daemon-connection";
import { liveConfigNodes } from "../file-daemon/live-config-nodes";
import type { EndedCommand, HealthChange, QueueDepth, RunningCommand } from "../file-daemon/daemon-activity";
import { MAX_CHANNELS } from "../../shared/settings";
import type { NodeDef, PluginAPI } from "../node-red-types";

/** Command lines (and failure messages) longer than this are cut in the overview (a command may be 64 KiB; 20 results of that would be a megabyte a poll). */
const SHOWN_COMMAND_CHARS = 2000;

/** One config node as the sidebar shows it. Times are ms since the epoch; durations ms. */
export interface DaemonOverview {
  readonly id: string;
  readonly name: string;
  readonly mode: DaemonConnection["mode"] | null;
  readonly commands: string | null;
  readonly results: string | null;
  readonly state: string;
  readonly message: string;
  /** Managed mode: why the daemon cannot start until someone fixes it. */
  readonly problem: string | null;
  /** What the daemon publishes about itself; null when none serves these files. */
  readonly daemon: PublishedDaemon | null;
  readonly channels: readonly { readonly index: number; readonly busy: boolean; readonly running: string | null }[];
  readonly queues: readonly QueueDepth[];
  readonly running: readonly (Omit<RunningCommand, "startedMono"> & { readonly forMs: number })[];
  readonly recent: readonly EndedCommand[];
  readonly health: readonly HealthChange[];
  /** Why the daemon's files could not be read (permission), or why this config node is not usable. */
  readonly error: string | null;
}

interface PublishedDaemon {
  readonly pid: number;
  readonly version: string;
  readonly startedAt: string;
  readonly uptimeMs: number | null;
  readonly channels: number;
  readonly sleepTime: number;
  readonly features: readonly string[];
  readonly fileMode: string;
  readonly allow: string | null;
}

/**
 * Every `file-daemon` config node of the deployed flows, with its daemon's health and what its
 * exec nodes are doing. Read when the sidebar asks, and only then: the daemon's info file and a
 * peek at each channel's two files; the rest is in memory.
 */
export function readOverview(RED: PluginAPI): DaemonOverview[] {
  const live = liveConfigNodes();
  const overview = live.map(({ id, name, connection }) => describe(id, name, connection));
  // Those the flows have that do not run: disabled, or not (yet) started. A config node inside
  // a subflow's definition runs only as each instance's own (listed above under its own id).
  const subflows = new Set<string>();
  const disabledTabs = new Set<string>();
  const defs: (NodeDef & Record<string, unknown>)[] = [];
  RED.nodes.eachNode((def) => {
    if (def.type === "subflow") subflows.add(def.id);
    else if (def.type === "tab" && def.disabled === true) disabledTabs.add(def.id);
    else if (def.type === "file-daemon") defs.push(def);
  });
  for (const def of defs) {
    if (live.some((entry) => entry.id === def.id) || (def.z !== undefined && subflows.has(def.z))) continue;
    const name = def.name ?? "";
    if (def.d === true || (def.z !== undefined && disabledTabs.has(def.z))) overview.push({ ...nothingKnown(def.id, name), state: "disabled" });
    // Between a redeploy's stop and start too: say both, not only the worse.
    else overview.push({ ...nothingKnown(def.id, name), error: "this config node is not running: the flows are being (re)started, or it could not start (see the Node-RED log)" });
  }
  return overview;
}

function describe(id: string, name: string, connection: DaemonConnection): DaemonOverview {
  const { health, activity } = connection;
  const now = performance.now();
  let daemon: PublishedInfo | null = null;
  let channels: ChannelOverview[] = [];
  let error: string | null = null;
  try {
    const files = daemonFiles(connection.commandsFile, connection.resultsFile);
    daemon = connection.refusal === null ? readLiveDaemon(files) : null;
    // A damaged info file must not make this loop for ever: no daemon serves more channels than this.
    if (daemon !== null) channels = readChannels(files, Math.min(daemon.channels, MAX_CHANNELS));
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  return {
    ...nothingKnown(id, name),
    mode: connection.mode,
    commands: connection.commandsFile,
    results: connection.resultsFile,
    state: health.state,
    message: health.message,
    problem: connection.refusal?.message ?? health.problem?.message ?? null,
    daemon: daemon === null ? null : published(daemon),
    channels: channels.map((channel) => ({ index: channel.index, busy: !isIdle(channel), running: channel.running })),
    queues: activity.queueDepths(),
    running: activity.runningCommands().map(({ startedMono, command, ...running }) => ({ ...running, command: shorten(command), forMs: now - startedMono })),
    recent: activity.recentResults().map((ended) => ({ ...ended, command: ended.command === null ? null : shorten(ended.command), message: ended.message === null ? null : shorten(ended.message) })),
    health: activity.healthChanges(),
    error,
  };
}

function shorten(text: string): string {
  if (text.length <= SHOWN_COMMAND_CHARS) return text;
  // Never half of a surrogate pair.
  const end = /[\uD800-\uDBFF]/.test(text.charAt(SHOWN_COMMAND_CHARS - 1)) ? SHOWN_COMMAND_CHARS - 1 : SHOWN_COMMAND_CHARS;
  return `${text.slice(0, end)}… (${text.length} characters)`;
}

function published(info: PublishedInfo): PublishedDaemon {
  const started = Date.parse(info.startedAt);
  return {
    pid: info.pid,
    version: info.version,
    startedAt: info.startedAt,
    uptimeMs: Number.isNaN(started) ? null : Math.max(0, Date.now() - started),
    channels: info.channels,
    sleepTime: info.sleepTime,
    features: info.features,
    fileMode: encodeFileMode(info.fileMode),
    allow: info.allow,
  };
}

function nothingKnown(id: string, name: string): DaemonOverview {
  return { id, name, mode: null, commands: null, results: null, state: "unknown", message: "", problem: null, daemon: null, channels: [], queues: [], running: [], recent: [], health: [], error: null };
}
