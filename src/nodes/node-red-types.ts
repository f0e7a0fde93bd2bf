/** The few parts of Node-RED's runtime API these nodes use (no @types/node-red is installed). */

export type NodeMessage = Record<string, unknown> & { payload?: unknown };

export interface NodeStatus {
  readonly fill?: "red" | "green" | "yellow" | "blue" | "grey";
  readonly shape?: "ring" | "dot";
  readonly text?: string;
}

/** One message to the first output, or one (or none) per output. */
export type SendFunction = (msg: NodeMessage | (NodeMessage | null)[]) => void;
export type DoneFunction = (err?: Error) => void;

export interface Node {
  readonly id: string;
  readonly type: string;
  name?: string;
  on(event: "input", listener: (msg: NodeMessage, send: SendFunction, done: DoneFunction) => void): void;
  on(event: "close", listener: (removed: boolean, done: () => void) => void): void;
  status(status: NodeStatus): void;
  send(msg: NodeMessage): void;
  log(message: string): void;
  warn(message: string): void;
  error(message: string | Error, msg?: NodeMessage): void;
}

/** The properties every node definition carries; each node type adds its own. */
export interface NodeDef {
  readonly id: string;
  readonly type: string;
  readonly name?: string;
  readonly z?: string;
}

/** Node-RED's i18n lookup: `key` in this module's locale catalog, `__name__` replaced by `vars.name`. */
export type Translate = (key: string, vars?: Record<string, string | number>) => string;

/** A node setting (RED.settings) the editor may read; its name starts with the node type in camelCase. */
export interface NodeSettingDef {
  readonly value: unknown;
  readonly exportable: boolean;
}

export interface NodeAPI {
  readonly nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType(type: string, constructor: (this: Node, def: never) => void, options?: { settings?: Record<string, NodeSettingDef> }): void;
    getNode(id: string): Node | null;
  };
  /** settings.js, read-only; node settings appear under their own names. */
  readonly settings: Readonly<Record<string, unknown>>;
  readonly _: Translate;
  readonly events: {
    on(event: string, listener: () => void): void;
    off?(event: string, listener: () => void): void;
    removeListener(event: string, listener: () => void): void;
  };
}

/** An Express request as the admin routes read it (Node-RED's httpAdmin is an Express app). */
export interface AdminRequest {
  readonly params: Readonly<Record<string, string | undefined>>;
}

export interface AdminResponse {
  status(code: number): AdminResponse;
  json(body: unknown): void;
}

export type AdminHandler = (req: AdminRequest, res: AdminResponse, next: () => void) => void;

/** What a plugin's runtime part uses: the node API plus the admin HTTP app and its permission checks. */
export interface PluginAPI extends NodeAPI {
  readonly nodes: NodeAPI["nodes"] & {
    /** Every node and config node of the deployed flows, as saved. */
    eachNode(callback: (def: NodeDef & Record<string, unknown>) => void): void;
  };
  readonly plugins: {
    registerPlugin(id: string, definition: { readonly type: string }): void;
  };
  readonly httpAdmin: {
    get(path: string, ...handlers: AdminHandler[]): void;
    post(path: string, ...handlers: AdminHandler[]): void;
  };
  readonly comms: {
    /** Sends `data` on `topic` to every connected editor (Node-RED gives each every topic). */
    publish(topic: string, data: unknown, retain: boolean): void;
  };
  readonly auth: {
    /** Refuses (401) a request whose user lacks `permission` when adminAuth is set; passes every request otherwise. */
    needsPermission(permission: string): AdminHandler;
  };
}
