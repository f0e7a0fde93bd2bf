// A JavaScript submitter process for the mixed-language concurrency test: runs COUNT commands
// one after the other through submitCommand and prints one JSON line per command (with its
// latency in seconds).
import { submitCommand } from "../../src/index";
import { markedCommand, SLEEP } from "./helpers";

async function main(): Promise<void> {
  const [commands, results, name, count, log] = process.argv.slice(2) as [string, string, string, string, string];
  for (let i = 0; i < Number(count); i++) {
    const { marker, command } = markedCommand(name, i, log);
    const began = performance.now();
    const elapsed = () => (performance.now() - began) / 1000;
    try {
      const result = await submitCommand(command, commands, results, SLEEP, { capture: true });
      process.stdout.write(`${JSON.stringify({ marker, code: result.code, stdout: result.stdout?.toString("utf8") ?? null, elapsed: elapsed() })}\n`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ marker, error: String(err), elapsed: elapsed() })}\n`);
    }
  }
}

void main();
