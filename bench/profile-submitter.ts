/**
 * The submitter of `npm run profile`: a child of profile.ts, started with the hook preloaded
 * (`-r profile-hook.js`), that runs `submitCommand("true", …)` one at a time as told over IPC
 * and marks each measured call's start and end in the hook's log. Between the marks it does
 * nothing else: no IPC, no timers.
 */
import { submitCommand } from "../src/client/submit";
import { mark, measureOverhead, recording } from "./profile-hook";
import { END_MARK, START_MARK } from "./profile-timeline";

export type SubmitterRequest =
  | { readonly op: "run"; readonly commands: string; readonly results: string; readonly sleepTime: number; readonly warmup: number; readonly rounds: number; readonly marked: boolean }
  | { readonly op: "overhead" }
  | { readonly op: "exit" };

export type SubmitterReply =
  | { readonly ok: true; readonly pid: number; readonly recording: boolean; readonly totals: readonly number[] }
  | { readonly ok: true; readonly pid: number; readonly overheadUs: number }
  | { readonly ok: false; readonly error: string };

function reply(message: SubmitterReply): void {
  process.send?.(message);
}

async function run(request: Extract<SubmitterRequest, { op: "run" }>): Promise<readonly number[]> {
  const submit = () => submitCommand("true", request.commands, request.results, request.sleepTime);
  for (let i = 0; i < request.warmup; i++) await submit();
  const totals: number[] = [];
  for (let i = 0; i < request.rounds; i++) {
    if (request.marked) mark(`${START_MARK} ${i}`);
    const started = performance.now();
    await submit();
    const spent = performance.now() - started;
    if (request.marked) mark(`${END_MARK} ${i}`);
    totals.push(spent);
  }
  return totals;
}

process.on("message", (request: SubmitterRequest) => {
  if (request.op === "exit") process.exit(0);
  if (request.op === "overhead") {
    reply({ ok: true, pid: process.pid, overheadUs: measureOverhead() });
    return;
  }
  run(request).then(
    (totals) => reply({ ok: true, pid: process.pid, recording: recording(), totals }),
    (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
