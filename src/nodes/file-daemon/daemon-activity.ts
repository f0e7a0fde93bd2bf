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
export type CommandEnd = Pick<EndedCommand, "code" | "signal" | "error" | "message">;

interface Tracked extends RunningCommand {
  readonly kill: (signal: string) => void;
}

let nextKey = 0;

/**
 * What the exec nodes of one config node are doing, kept in memory for the editor's sidebar:
 * each command in flight (with a way to kill it), each node's queue, the last results and the
 * last health changes. Recording is a Map insert and an array push per command; nothing is
 * read from disk or sent anywhere until the sidebar asks.
 */
export class DaemonActivity {
  private readonly running = new Map<string, Tracked>();
  private readonly ended: EndedCommand[] = [];
  private readonly changes: HealthChange[] = [];
  private readonly queues = new Map<string, () => QueueDepth>();

  /** Records a command handed to the daemon; the returned function records its end, once. */
  started(node: Sender, command: string, streamed: boolean, kill: (signal: string) => void): (end: CommandEnd) => void {
    const key = `c${String(++nextKey)}`;
    const entry: Tracked = { key, node, command, startedAt: Date.now(), startedMono: performance.now(), streamed, kill };
    this.running.set(key, entry);
    return (end) => {
      if (!this.running.delete(key)) return;
      this.remember({ node, command, endedAt: Date.now(), durationMs: performance.now() - entry.startedMono, ...end });
    };
  }

  /** A message that ended before reaching the daemon (not allowed, bad input, queue full…). */
  refused(node: Sender, command: string | null, end: CommandEnd): void {
    this.remember({ node, command, endedAt: Date.now(), durationMs: 0, ...end });
  }

  /** Sends `signal` to a command in flight; false when it has ended (or never was). */
  kill(key: string, signal: string): boolean {
    const entry = this.running.get(key);
    if (entry === undefined) return false;
    entry.kill(signal);
    return true;
  }

  healthChanged(health: DaemonHealth): void {
    this.changes.push({ at: Date.now(), state: health.state, pid: health.pid, message: health.message });
    if (this.changes.length > RECENT_HEALTH_CHANGES) this.changes.shift();
  }

  /** An exec node reports its queue through `depth`; the returned function stops that. */
  addQueue(nodeId: string, depth: () => QueueDepth): () => void {
    this.queues.set(nodeId, depth);
    return () => this.queues.delete(nodeId);
  }

  runningCommands(): readonly RunningCommand[] {
    return [...this.running.values()].map(({ key, node, command, startedAt, startedMono, streamed }) => ({ key, node, command, startedAt, startedMono, streamed }));
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
  }
}
