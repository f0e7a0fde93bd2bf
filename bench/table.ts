/** The benchmark's one table, printed as Markdown (the README shows a copy). */

/** The first words of every row, in order: the test checks that each one is printed. */
export const LABELS = {
  floor: "Floor: `sh -c true` spawned from Node",
  execSeq: "Core exec node, `true`, one message at a time",
  oursSeq: "file-daemon-exec, `true`, one message at a time",
  oursTmpfs: "file-daemon-exec, the same with its files on tmpfs (/dev/shm)",
  engineWatch: "Engine (submitCommand), wake on change",
  enginePoll: "Engine, poll only (`--no-watch`, `watch: false`)",
  burstExec: "Burst of 200 messages, core exec node",
  burstOurs: "Burst of 200 messages, file-daemon-exec",
  freeChannel: "`true` on a multi-channel daemon, all channels free",
  busyChannel: "`true` while `sleep` holds one channel",
  daemonIdle: "Daemon idle CPU",
  nodeRedIdle: "Node-RED idle CPU, with our nodes vs without",
  sidebarTab: "Node-RED with the sidebar tab open vs closed",
  daemonIdleRss: "Daemon memory idle, before its first command (VmHWM; VmRSS) vs a bare idle `node`",
  daemonIdlePrivate: "Daemon private memory idle (RssAnon; RssFile, the node binary's pages among it, is shared with every node on the machine)",
  daemonRss: "Daemon peak RSS after the burst (VmHWM; VmRSS now) vs a bare idle `node`",
  daemonPrivate: "Daemon private memory after the burst (RssAnon: peak of samples every 100 ms during the bursts; now)",
  soak: "Soak: daemon peak RSS (VmHWM; VmRSS sampled every 1 s) and open fds",
  soakPrivate: "Soak: daemon private memory (RssAnon, sampled every 1 s)",
  forksApi: "Processes started by Node-RED per message (child_process calls)",
  forksStrace: "Forks of Node-RED per message (strace clone/fork)",
  heap: "Node-RED holding +",
  heapTarget: "With the most Buffers: ours vs +0 and vs exec",
  heapTargetObjects: "With the most JS objects: ours vs +0 and vs exec",
  eldOurs: "Node-RED's event loop while ours runs vs the same process idle (any heap size)",
  stream: "Stream: `seq 100000` through the node's second output (Stream ticked), one line per message",
} as const;

export type Verdict = "PASS" | "MISS" | "n/a" | "";

export interface Row {
  readonly what: string;
  readonly figure: string;
  readonly target?: string;
  readonly verdict?: Verdict;
}

export function verdict(ok: boolean | null): Verdict {
  if (ok === null) return "n/a";
  return ok ? "PASS" : "MISS";
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

export function renderTable(rows: readonly Row[]): string {
  const lines = ["| Measure | Result (median) | Target | |", "|---|---|---|---|"];
  for (const row of rows) lines.push(`| ${cell(row.what)} | ${cell(row.figure)} | ${cell(row.target ?? "")} | ${row.verdict ?? ""} |`);
  return `${lines.join("\n")}\n`;
}
