import assert from "node:assert/strict";
import { CommandQueue, DEFAULT_MAX_WAITING, QueueClosedError, QueueFullError } from "../../src/nodes/file-daemon-exec/command-queue";
import { RestartPolicy } from "../../src/supervisor/restart-policy";

/** A task that runs until the test settles it, or until aborted (then it rejects). */
class Gate {
  readonly started: string[] = [];
  readonly aborted: string[] = [];
  private readonly open = new Map<string, () => void>();

  task(name: string) {
    return (signal: AbortSignal) =>
      new Promise<string>((resolve, reject) => {
        this.started.push(name);
        this.open.set(name, () => resolve(name));
        signal.addEventListener("abort", () => {
          this.aborted.push(name);
          reject(new Error(`${name} aborted`));
        });
      });
  }

  finish(name: string): void {
    const resolve = this.open.get(name);
    if (resolve === undefined) throw new Error(`${name} has not started`);
    resolve();
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("CommandQueue", function () {
  it("runs tasks first in, first out, `concurrency` at a time", async function () {
    const gate = new Gate();
    const queue = new CommandQueue<string>(2);
    const results = ["a", "b", "c", "d"].map((name) => queue.push(gate.task(name)));
    await settle();
    assert.deepEqual(gate.started, ["a", "b"]);
    assert.equal(queue.waitingCount, 2);
    gate.finish("b");
    await settle();
    assert.deepEqual(gate.started, ["a", "b", "c"]);
    gate.finish("a");
    gate.finish("c");
    await settle();
    gate.finish("d");
    assert.deepEqual(await Promise.all(results), ["a", "b", "c", "d"]);
    assert.equal(queue.runningCount, 0);
  });

  it(`keeps at most ${DEFAULT_MAX_WAITING} waiting by default and refuses more with QueueFullError`, async function () {
    const gate = new Gate();
    const queue = new CommandQueue<string>(1);
    const accepted = Array.from({ length: DEFAULT_MAX_WAITING + 1 }, (_, i) => queue.push(gate.task(`t${i}`)));
    await assert.rejects(queue.push(gate.task("overflow")), (err: unknown) => err instanceof QueueFullError && err.code === "QUEUE_FULL");
    assert.equal(queue.waitingCount, DEFAULT_MAX_WAITING);
    await queue.close("test over");
    await Promise.allSettled(accepted);
  });

  it("abortRunning aborts running tasks only; close rejects waiting ones and refuses new ones", async function () {
    const gate = new Gate();
    const queue = new CommandQueue<string>(1);
    const running = queue.push(gate.task("running"));
    const waiting = queue.push(gate.task("waiting"));
    await settle();
    assert.equal(queue.abortRunning("kill"), 1);
    await assert.rejects(running, /running aborted/);
    await settle();
    assert.deepEqual(gate.started, ["running", "waiting"], "the waiting task starts after the kill");
    await queue.close("node closed");
    await assert.rejects(waiting, /waiting aborted/);
    const afterClose = queue.push(gate.task("late"));
    await assert.rejects(afterClose, (err: unknown) => err instanceof QueueClosedError && /node closed; the command was not run/.test(err.message));
    assert.deepEqual(gate.aborted, ["running", "waiting"]);
  });

  it("close rejects waiting tasks with QueueClosedError without running them", async function () {
    const gate = new Gate();
    const queue = new CommandQueue<string>(1);
    const running = queue.push(gate.task("running"));
    const waiting = queue.push(gate.task("waiting"));
    await queue.close("node closed");
    await assert.rejects(waiting, QueueClosedError);
    await assert.rejects(running, /aborted/);
    assert.deepEqual(gate.started, ["running"]);
  });
});

describe("RestartPolicy (managed daemon restarts)", function () {
  it("waits 100 ms, then twice as long each time up to 15 s, and starts over after 30 s up", function () {
    const policy = new RestartPolicy({ maxFastCrashes: Infinity });
    const delays = Array.from({ length: 10 }, () => policy.onDeath(20_000));
    assert.deepEqual(
      delays.map((d) => ("restartInMs" in d ? d.restartInMs : d.giveUp)),
      [100, 200, 400, 800, 1600, 3200, 6400, 12_800, 15_000, 15_000],
    );
    assert.deepEqual(policy.onDeath(30_000), { restartInMs: 100 });
  });

  it("gives up after 5 crashes in a row, each within 10 s of its start", function () {
    const policy = new RestartPolicy();
    for (let i = 0; i < 4; i++) assert.ok("restartInMs" in policy.onDeath(500));
    assert.ok("restartInMs" in policy.onDeath(10_000), "a crash after 10 s breaks the series");
    for (let i = 0; i < 4; i++) assert.ok("restartInMs" in policy.onDeath(9_999));
    const last = policy.onDeath(1);
    assert.ok("giveUp" in last && /5 times in a row within 10 s/.test(last.giveUp));
  });
});
