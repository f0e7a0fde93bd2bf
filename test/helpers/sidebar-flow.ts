/** The ids of the flow the sidebar tests deploy. */
export const SIDEBAR_FLOW = {
  tab: "f1d0000000000001",
  config: "f1d0000000000002",
  exec: "f1d0000000000003",
  sleepInject: "f1d0000000000004",
  helloInject: "f1d0000000000005",
} as const;

/**
 * Two injects ("sleep 30", "say hello" = `echo hello`) into one shell exec node "sleeper",
 * whose managed config node "pi daemon" (2 channels) keeps its files in the default directory.
 */
export function sidebarFlow(): Record<string, unknown>[] {
  const { tab, config, exec, sleepInject, helloInject } = SIDEBAR_FLOW;
  const inject = (id: string, name: string, payload: string, y: number) => ({
    id, type: "inject", z: tab, name, props: [{ p: "payload" }], repeat: "", crontab: "", once: false, onceDelay: 0.1, topic: "", payload, payloadType: "str", x: 150, y, wires: [[exec]],
  });
  return [
    { id: tab, type: "tab", label: "sidebar test", disabled: false, info: "" },
    inject(sleepInject, "sleep 30", "sleep 30", 80),
    inject(helloInject, "say hello", "echo hello", 140),
    { id: exec, type: "file-daemon-exec", z: tab, name: "sleeper", daemon: config, command: "", appendPayload: false, timeout: 0, capture: false, failOnNonZero: false, x: 360, y: 110, wires: [[]] },
    { id: config, type: "file-daemon", name: "pi daemon", commandsFile: "", resultsFile: "", sleepTime: 0.5, mode: "managed", channels: 2, version: 2 },
  ];
}
