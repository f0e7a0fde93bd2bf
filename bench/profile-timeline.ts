/**
 * The profile's data (what profile-hook.ts records in each process) and its analysis: the logs
 * of the submitter and the daemon merged into one timeline, cut into rounds at the submitter's
 * marks, and each round into phases at its lock and exit events. Pure: no file, no process.
 */

/** The hook records only when this names the file to write its log to (on exit). */
export const PROFILE_LOG_ENV = "FILE_DAEMON_PROFILE_LOG";

/**
 * One recorded event: [time, kind, name, duration, extra].
 * - time: performance.now() of the process (ms) when the call began or the event arrived
 * - mkdir, rmdir, rename: the base name (rename: of the target), the call's duration, the error code or ""
 * - watch: an fs.watch change event: the base name, 0, the event type ("rename" or "change")
 * - spawn: child_process.spawn: the file's base name, how long the call blocked, the child's pid
 * - exit: a child's 'exit' event as this process saw it: "", 0, the child's pid
 * - mark: set by the caller (mark()): the label, 0, ""
 */
export type RawEvent = [number, Kind, string, number, string | number];

export type Kind = "mkdir" | "rmdir" | "rename" | "watch" | "spawn" | "exit" | "mark";

export interface ProfileLog {
  readonly pid: number;
  /**
   * Added to a time of this process gives CLOCK_MONOTONIC in ms (process.hrtime), one clock
   * for every process on the machine, unlike performance.timeOrigin (each process's wall
   * clock at its start, which NTP may slew between two starts).
   */
  readonly offsetMs: number;
  readonly events: RawEvent[];
}

export type Side = "submitter" | "daemon";

export interface Event {
  /** CLOCK_MONOTONIC, ms. */
  readonly t: number;
  readonly side: Side;
  readonly kind: Kind;
  readonly name: string;
  /** ms */
  readonly dur: number;
  readonly extra: string | number;
}

/** Both logs as one timeline, in time order. */
export function merge(logs: Readonly<Record<Side, ProfileLog>>): Event[] {
  const events: Event[] = [];
  for (const side of ["submitter", "daemon"] as const) {
    const log = logs[side];
    for (const [t, kind, name, dur, extra] of log.events) events.push({ t: t + log.offsetMs, side, kind, name, dur, extra });
  }
  return events.sort((a, b) => a.t - b.t);
}

/**
 * The phases of one round trip, in order; each ends where the next begins, at the moment the
 * named call returned (a mkdir: the lock is held; an rmdir: released) or the event arrived.
 */
export const PHASES = [
  { key: "prepare", label: "0. submitter prepares", until: "its mkdir commands.lock (place)" },
  { key: "place", label: "1. submitter places", until: "its rmdir commands.lock" },
  { key: "daemonWakes", label: "2. daemon wakes", until: "its mkdir commands.lock (take)" },
  { key: "take", label: "3. daemon takes", until: "its rmdir commands.lock" },
  { key: "shell", label: "4. shell runs the command", until: "the shell's 'exit' event in the daemon" },
  { key: "notice", label: "5. daemon notices the exit", until: "its mkdir commands.lock (publish)" },
  { key: "publish", label: "6. daemon publishes", until: "its rmdir commands.lock" },
  { key: "submitterWakes", label: "7. submitter wakes", until: "its mkdir commands.lock (collect)" },
  { key: "collect", label: "8. submitter collects", until: "its rmdir commands.lock" },
  { key: "return", label: "9. submitter returns", until: "the promise resolved (the caller's mark)" },
] as const;

export const PHASE_COUNT = PHASES.length;

/** The table's rows after the phases (profile.ts prints them; the test looks for them). */
export const TOTAL_LABEL = "Round trip (call → resolved)";
export const SPAWN_LABEL = "Raw spawn('/bin/sh', ['-c', 'true']) from Node, for scale";

/** Labels of the marks profile-submitter.ts sets around each measured call. */
export const START_MARK = "round-start";
export const END_MARK = "round-end";

export const COMMANDS_LOCK = "commands.lock";
export const RESULTS_LOCK = "results.lock";

/** Who holds commands.lock in a clean round: place, take, publish, collect. */
const EXPECTED_HOLDS: readonly Side[] = ["submitter", "daemon", "daemon", "submitter"];

export interface Round {
  readonly index: number;
  readonly start: number;
  readonly end: number;
  /** Milliseconds, one per phase (PHASES order); they add up to end − start. */
  readonly phases: readonly number[];
  /**
   * The phases that include a busy retry: a party found commands.lock still held (it woke on
   * the other's rename, made inside the hold) and took it on a later try. One entry per failed mkdir.
   */
  readonly retries: readonly number[];
  /** Of each phase, the ms the daemon spent inside spawn calls (forking a warm shell: its event loop blocked). */
  readonly forking: readonly number[];
  /** When the daemon's warm-shell forks began, with the phase each landed in. */
  readonly spawns: readonly { readonly phase: number; readonly blockedMs: number }[];
  /** The submitter's rename of the commands file → the daemon's first change event naming it (ms), or null. */
  readonly daemonDelivery: number | null;
  /** The daemon's rename of the results file (publish) → the submitter's first change event naming it (ms), or null. */
  readonly submitterDelivery: number | null;
  /** Change events each side's JavaScript received during the round (every wake-up, useful or not). */
  readonly watchEvents: Readonly<Record<Side, number>>;
  /** Calls and events the hook recorded during the round (its overhead is per record). */
  readonly recorded: Readonly<Record<Side, number>>;
}

export interface Skipped {
  readonly index: number;
  readonly reason: string;
  readonly start: number;
  /** The end mark, null when there is none. */
  readonly end: number | null;
}

export interface Analysis {
  readonly rounds: readonly Round[];
  readonly skipped: readonly Skipped[];
  /** Daemon spawns between measured rounds (none expected: a refill follows a publish). */
  readonly spawnsBetween: readonly number[];
}

function isLockOp(e: Event): boolean {
  return (e.kind === "mkdir" || e.kind === "rmdir") && (e.name === COMMANDS_LOCK || e.name === RESULTS_LOCK);
}

/**
 * Cuts the timeline into the rounds the submitter marked (`${START_MARK} i` … `${END_MARK} i`)
 * and each round into PHASES. A round whose lock events are not a clean round's (an extra lock
 * cycle, a failed attempt other than the next holder's early try, no or several shell exits) is
 * skipped with its reason: its phases would be attributed to the wrong step.
 */
export function analyse(events: readonly Event[]): Analysis {
  const starts = new Map<number, number>();
  const ends = new Map<number, number>();
  for (const e of events) {
    if (e.kind !== "mark" || e.side !== "submitter") continue;
    const [label, index] = e.name.split(" ");
    if (label === START_MARK) starts.set(Number(index), e.t);
    if (label === END_MARK) ends.set(Number(index), e.t);
  }
  const rounds: Round[] = [];
  const skipped: Skipped[] = [];
  const forks = events.filter((e) => e.side === "daemon" && e.kind === "spawn");
  const windows: { start: number; end: number; round: Round | null }[] = [];
  for (const [index, start] of [...starts].sort((a, b) => a[0] - b[0])) {
    const end = ends.get(index);
    if (end === undefined) {
      skipped.push({ index, reason: "no end mark", start, end: null });
      continue;
    }
    const inside = events.filter((e) => e.t >= start && e.t <= end);
    const result = cut(index, start, end, inside, forks);
    if (typeof result === "string") skipped.push({ index, reason: result, start, end });
    else rounds.push(result);
    windows.push({ start, end, round: typeof result === "string" ? null : result });
  }
  const spawnsBetween: number[] = [];
  const first = windows[0]?.start ?? Infinity;
  const last = windows.at(-1)?.end ?? -Infinity;
  for (const e of events) {
    if (e.side !== "daemon" || e.kind !== "spawn" || e.t < first || e.t > last) continue;
    if (!windows.some((w) => e.t >= w.start && e.t <= w.end)) spawnsBetween.push(e.dur);
  }
  return { rounds, skipped, spawnsBetween };
}

/** When a call returned: the boundaries of the phases (the lock held, the lock released, the file in place). */
function done(e: Event): number {
  return e.t + e.dur;
}

/**
 * Each side's successful mkdir and the rmdir that follows it on that side, all sorted by when
 * the mkdir returned. Within one process the calls are sequential; between two, the order of
 * their timestamps can lie by a few µs (a process descheduled between a syscall and the clock
 * read after it), but never for two holds of a lock: the next mkdir can only succeed after
 * the previous rmdir, which returned after the previous mkdir.
 */
function holdsOf(ops: readonly Event[]): (readonly [Event, Event])[] | string {
  const holds: (readonly [Event, Event])[] = [];
  for (const side of ["submitter", "daemon"] as const) {
    const own = ops.filter((e) => e.side === side);
    for (let i = 0; i < own.length; i += 2) {
      const [taken, freed] = [own[i] as Event, own[i + 1]];
      if (taken.kind !== "mkdir" || freed?.kind !== "rmdir") return `lock order differs: the ${side}'s ${own.map((e) => e.kind).join(", ")} of commands.lock`;
      holds.push([taken, freed]);
    }
  }
  return holds.sort((a, b) => done(a[0]) - done(b[0]));
}

/** Which hold of commands.lock each successful mkdir of a clean round is… */
const HOLDS = ["place", "take", "publish", "collect"] as const;
/** …and the phase that ends at it. */
const RETRY_PHASE = [0, 2, 5, 7] as const;

function cut(index: number, start: number, end: number, inside: readonly Event[], forks: readonly Event[]): Round | string {
  const locks = inside.filter(isLockOp);
  const holds = holdsOf(locks.filter((e) => e.name === COMMANDS_LOCK && e.extra === ""));
  if (typeof holds === "string") return holds;
  const sides = holds.map(([taken]) => taken.side);
  if (sides.length !== EXPECTED_HOLDS.length || EXPECTED_HOLDS.some((side, i) => sides[i] !== side)) {
    return `lock order differs: commands.lock held by ${sides.join(", ") || "nobody"}`;
  }
  // A party that wakes on the other's rename, made inside its hold, finds the lock still held
  // and tries again when it is released: that wait belongs to the phase that ends at its
  // successful mkdir. Any other failed attempt (a look between the holds) is not a clean round.
  const retries: number[] = [];
  for (const failed of locks.filter((e) => e.kind === "mkdir" && e.extra !== "")) {
    const next = holds.findIndex(([taken]) => done(taken) >= done(failed));
    const heldBy = holds[next - 1]?.[0];
    const where = heldBy === undefined ? "" : ` while the ${heldBy.side} held it (${HOLDS[next - 1] ?? "?"})`;
    if (failed.name !== COMMANDS_LOCK || next < 0 || holds[next]?.[0].side !== failed.side) {
      return `busy lock: the ${failed.side}'s mkdir ${failed.name} failed (${failed.extra})${where}, and it did not take the lock next`;
    }
    retries.push(RETRY_PHASE[next] as number);
  }
  // Acquired: when the mkdir returned. Released: when the rmdir returned, or earlier if the
  // next holder's mkdir returned first (the releasing process was descheduled right after
  // its rmdir): the lock was free by then.
  const acquired = holds.map(([taken]) => done(taken));
  const released = holds.map(([, freed], i) => Math.min(done(freed), acquired[i + 1] ?? Infinity));
  const [placeLock, takeLock, publishLock, collectLock] = acquired as [number, number, number, number];
  const [placed, taken, published, collected] = released as [number, number, number, number];
  const exits = inside.filter((e) => e.side === "daemon" && e.kind === "exit" && e.t > taken && e.t < publishLock);
  if (exits.length !== 1) return `${exits.length} shell exits between the take and the publish`;
  const exited = (exits[0] as Event).t;
  const edges = [start, placeLock, placed, takeLock, taken, exited, publishLock, published, collectLock, collected, end];
  const phases = edges.slice(1).map((t, i) => t - (edges[i] as number));
  if (phases.some((ms) => ms < 0)) return `events out of order (${phases.map((ms) => ms.toFixed(3)).join(", ")})`;
  const phaseAt = (t: number) => {
    const next = edges.findIndex((edge, i) => i > 0 && t < edge);
    return next < 0 ? PHASE_COUNT - 1 : next - 1;
  };
  const spawns = inside.filter((e) => e.side === "daemon" && e.kind === "spawn").map((e) => ({ phase: phaseAt(e.t), blockedMs: e.dur }));
  // Also a fork begun in the previous round, still blocking the daemon when this one's command arrives.
  const forking = phases.map((_ms, i) => {
    const [from, to] = [edges[i] as number, edges[i + 1] as number];
    return forks.reduce((sum, e) => sum + Math.max(0, Math.min(to, done(e)) - Math.max(from, e.t)), 0);
  });
  const firstEventAfter = (side: Side, name: string, after: number) => inside.find((e) => e.side === side && e.kind === "watch" && e.name === name && e.t >= after)?.t ?? null;
  const placeRename = inside.find((e) => e.side === "submitter" && e.kind === "rename" && e.name === "commands" && e.t >= placeLock && e.t <= placed);
  const publishRename = inside.find((e) => e.side === "daemon" && e.kind === "rename" && e.name === "results" && e.t >= publishLock && e.t <= published);
  const delivery = (rename: Event | undefined, side: Side, name: string) => {
    if (rename === undefined) return null;
    const renamed = rename.t + rename.dur;
    const seen = firstEventAfter(side, name, renamed);
    return seen === null ? null : seen - renamed;
  };
  const count = (side: Side, kind?: Kind) => inside.filter((e) => e.side === side && (kind === undefined ? e.kind !== "mark" : e.kind === kind)).length;
  return {
    index,
    start,
    end,
    phases,
    forking,
    retries,
    spawns,
    daemonDelivery: delivery(placeRename, "daemon", "commands"),
    submitterDelivery: delivery(publishRename, "submitter", "results"),
    watchEvents: { submitter: count("submitter", "watch"), daemon: count("daemon", "watch") },
    recorded: { submitter: count("submitter"), daemon: count("daemon") },
  };
}

/** Every event of one round, one line each, in ms from its start (for `--timeline`). */
export function formatRound(events: readonly Event[], start: number, end: number): string {
  return events
    .filter((e) => e.t >= start && e.t <= end)
    .map((e) => {
      const µs = `${(e.dur * 1000).toFixed(0)} µs`;
      const detail: Record<Kind, string> = {
        mkdir: ` (${µs}${e.extra === "" ? "" : ` ${e.extra}`})`,
        rmdir: ` (${µs}${e.extra === "" ? "" : ` ${e.extra}`})`,
        rename: ` (${µs}${e.extra === "" ? "" : ` ${e.extra}`})`,
        spawn: ` (${µs}, pid ${e.extra})`,
        exit: ` pid ${e.extra}`,
        watch: ` ${e.extra}`,
        mark: "",
      };
      const took = detail[e.kind];
      return `${(e.t - start).toFixed(3).padStart(8)}  ${e.side.padEnd(9)}  ${e.kind} ${e.name}${took}`;
    })
    .join("\n");
}
