import type { DaemonHealth } from "./daemon-connection";

/** How many ended commands, and how many health changes, a config node remembers for the sidebar. */
export const RECENT_RESULTS = 20;
export const RECENT_HEALTH_CHANGES = 10;

/** The exec node a command came from, as the editor names it. */
export interface Sender {
  readonly id: string;
  readonly name: string;
}

/** A command an exec node handed to the daemon, not ended yet. */
export interface RunningCommand {
  /** Unique within this Node-RED process: what the sidebar's Kill button names. */
  readonly key: string;
  readonly node: Sender;
  /** As the exec node submitted it: the user's own text, not quoted again. */
  readonly command: string;
  /** Wall clock, for "since"; durations use `startedMono` (a clock jump does not change them). */
  readonly startedAt: number;
  readonly startedMono: number;
  readonly streamed: boolean;
  /** The signal a kill already asked for (Kill, msg.kill, the node closing); null while none has. */
  readonly killRequested: string | null;
}

/** How the sidebar reaches a command in flight: through the same abort as msg.kill. */
export interface CommandControl {
  /** Asks the daemon to send `signal`; false when a kill was asked for already (only the first is sent). */
  kill(signal: string): boolean;
  killRequested(): string | null;
}

/** How a command (or a message refused before it became one) ended. */
export interface EndedCommand {
  readonly node: Sender;
  readonly command: string | null;
  readonly endedAt: number;
  /** From hand-over to the end; 0 for a message refused before it reached the daemon. */
  readonly durationMs: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** The failure's error code (KILLED, TIMEOUT, NOT_ALLOWED…), null when the command ended by itself. */
  readonly error: string | null;
  readonly message: string | null;
}

export interface HealthChange {
  readonly at: number;
  readonly state: DaemonHealth["state"];
  readonly pid: number | null;
  readonly message: string;
}

/** What an exec node's queue holds now. */
export interface QueueDepth {
  readonly node: Sender;
  readonly waiting: number;
  readonly running: number;
}

/** The end of a running command: its outcome, or a failure before or instead of one. */
export type CommandEnd = Pick<EndedCommand, "code" | "signal" | "error" | "message"> & {
  /** How long the daemon ran it, when it did (its own measure); else the time since hand-over counts. */
  readonly ranMs?: number;
};

/** What Kill found: sent now, asked for already (with which signal), or the command has ended. */
export type KillAnswer = { readonly sent: string } | { readonly already: string } | { readonly ended: true };

type Tracked = Omit<RunningCommand, "killRequested"> & { readonly control: CommandControl };

let nextKey = 0;

/** Who wants to know that some config node's activity changed (the sidebar, to tell open editors). */
const changeListeners = new Set<() => void>();

/** Calls `listener` after every change to any config node's activity; returns the unsubscribe function. */
export function onActivityChange(listener: () => void): () => void {
  changeListeners.add(listener);
  return () => changeListeners.delete(listener);
}

/** Tells the listeners that something the sidebar shows changed (a command, a queue, a health, a config node started or closed). */
export function activityChanged(): void {
  for (const listener of changeListeners) listener();
}

/**
 * What the exec nodes of one config node are doing, kept in memory for the editor's sidebar:
 * each command in flight (with a way to kill it), each node's queue, the last results and the
 * last health changes. Recording is a Map insert and an array push per command, and a call to
 * the change listeners (the sidebar's, which tells open editors at most 4 times a second);
 * nothing is read from disk until the sidebar asks.
 */
export class DaemonActivity {
  private readonly running = new Map<string, Tracked>();
  private readonly ended: EndedCommand[] = [];
  private readonly changes: HealthChange[] = [];
  private readonly queues = new Map<string, () => QueueDepth>();

  /** Records a command handed to the daemon; the returned function records its end, once. */
  started(node: Sender, command: string, streamed: boolean, control: CommandControl): (end: CommandEnd) => void {
    const key = `c${String(++nextKey)}`;
    const entry: Tracked = { key, node, command, startedAt: Date.now(), startedMono: performance.now(), streamed, control };
    this.running.set(key, entry);
    activityChanged();
    return ({ ranMs, ...end }) => {
      if (!this.running.delete(key)) return;
      this.remember({ node, command, endedAt: Date.now(), durationMs: ranMs ?? performance.now() - entry.startedMono, ...end });
    };
  }

  /** A message that ended before reaching the daemon (not allowed, bad input, queue full…). */
  refused(node: Sender, command: string | null, end: CommandEnd): void {
    this.remember({ node, command, endedAt: Date.now(), durationMs: 0, ...end });
  }

  /** Sends `signal` to a command in flight, unless it has ended or a kill was asked for already. */
  kill(key: string, signal: string): KillAnswer {
    const entry = this.running.get(key);
    if (entry === undefined) return { ended: true };
    if (entry.control.kill(signal)) {
      activityChanged();
      return { sent: signal };
    }
    return { already: entry.control.killRequested() ?? signal };
  }

  healthChanged(health: DaemonHealth): void {
    this.changes.push({ at: Date.now(), state: health.state, pid: health.pid, message: health.message });
    if (this.changes.length > RECENT_HEALTH_CHANGES) this.changes.shift();
    activityChanged();
  }

  /** An exec node's queue grew or shrank, or msg.kill asked its commands to stop. */
  queueChanged(): void {
    activityChanged();
  }

  /** An exec node reports its queue through `depth`; the returned function stops that. */
  addQueue(nodeId: string, depth: () => QueueDepth): () => void {
    this.queues.set(nodeId, depth);
    activityChanged();
    return () => {
      // A node redeployed under the same id may have registered its own queue meanwhile.
      if (this.queues.get(nodeId) === depth) this.queues.delete(nodeId);
      activityChanged();
    };
  }

  runningCommands(): readonly RunningCommand[] {
    return [...this.running.values()].map(({ key, node, command, startedAt, startedMono, streamed, control }) => ({ key, node, command, startedAt, startedMono, streamed, killRequested: control.killRequested() }));
  }

  /** Newest first. */
  recentResults(): readonly EndedCommand[] {
    return [...this.ended].reverse();
  }

  /** Newest first. */
  healthChanges(): readonly HealthChange[] {
    return [...this.changes].reverse();
  }

  queueDepths(): readonly QueueDepth[] {
    return [...this.queues.values()].map((depth) => depth());
  }

  private remember(ended: EndedCommand): void {
    this.ended.push(ended);
    if (this.ended.length > RECENT_RESULTS) this.ended.shift();
    activityChanged();
  }
}
