import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { processStartTime } from "../../src/protocol/io/liveness";

// A daemon SIGKILLed a moment ago is a zombie until its parent reaps it: /proc still shows its
// start time. It holds nothing and will never write again, so it must not pass for alive (a
// supervisor had "adopted" such a daemon instead of restarting it).

describe("liveness: a zombie is not alive", function () {
  it("processStartTime is null for an ended, unreaped process, and its start time while it ran", async function () {
    // The parent forks a child that sleeps, prints its pid, then exits while the parent sleeps on without reaping it.
    const parent = spawn("python3", ["-c", "import os,sys,time\npid=os.fork()\nif pid==0:\n  time.sleep(0.5); os._exit(0)\nprint(pid, flush=True); time.sleep(30)"], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const pid = await new Promise<number>((resolve) => parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
      const running = processStartTime(pid);
      assert.match(running ?? "", /^\d+$/, "a running process has a start time");
      // Wait until the kernel shows it as a zombie.
      const deadline = performance.now() + 10_000;
      const state = () => readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.[0];
      while (state() !== "Z") {
        assert.ok(performance.now() < deadline, "the child never became a zombie");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(processStartTime(pid), null);
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
