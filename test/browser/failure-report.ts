import type { NodeRed } from "./node-red-process";

/**
 * After a failed step of a browser test: a screenshot named after the step (when the browser is
 * up) and the last 40 lines Node-RED printed, both in the test's output.
 */
export async function reportFailure(test: Mocha.Test | undefined, shot: ((name: string) => Promise<string>) | null, nodeRed: NodeRed | undefined): Promise<void> {
  if (test?.state !== "failed") return;
  if (shot !== null) {
    const file = await shot(`failed-${(test.title.match(/\w+/g) ?? []).slice(0, 4).join("-")}`).catch(() => "");
    if (file) console.log(`      screenshot of the failure: ${file}`);
  }
  if (nodeRed !== undefined) console.log(`      Node-RED's log:\n${nodeRed.output().split("\n").slice(-40).join("\n")}`);
}
