/** The parts of node-red-node-test-helper (which ships no types) that these tests use. */
declare module "node-red-node-test-helper" {
  type FlowNode = Record<string, unknown> & { id: string; type: string };
  type NodeModule = (RED: never) => void;

  interface TestNode {
    readonly id: string;
    on(event: "input", listener: (msg: Record<string, unknown>) => void): void;
    on(event: string, listener: (...args: never[]) => void): void;
    receive(msg: Record<string, unknown>): void;
    status: unknown;
    error: unknown;
  }

  interface NodeTestHelper {
    init(runtimePath: string, userSettings?: Record<string, unknown>): void;
    /** settings.js for the next load, merged over the defaults (replaces the previous call's). */
    settings(userSettings?: Record<string, unknown>): Record<string, unknown>;
    load(nodes: NodeModule | NodeModule[], flow: FlowNode[]): Promise<void>;
    setFlows(flow: FlowNode[], type?: "full" | "flows" | "nodes"): Promise<void>;
    unload(): Promise<void>;
    /** Stops the flows (nodes are closed, not removed) but keeps them loaded. */
    clearFlows(): Promise<void>;
    getNode(id: string): TestNode | null;
    /** The sinon spy on RED.log.log while a flow is loaded. */
    log(): unknown;
  }

  const helper: NodeTestHelper;
  export = helper;
}
