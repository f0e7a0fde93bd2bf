import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const LOCALES = path.resolve(__dirname, "..", "..", "..", "nodes", "locales", "en-US");

/** Every en-US catalog of our nodes, merged (each file holds one top-level key: its node type). */
export function englishCatalog(): Record<string, unknown> {
  const catalog: Record<string, unknown> = {};
  for (const file of readdirSync(LOCALES).filter((name) => name.endsWith(".json"))) Object.assign(catalog, JSON.parse(readFileSync(path.join(LOCALES, file), "utf8")) as Record<string, unknown>);
  return catalog;
}

/** The text at a dotted key, or undefined. */
export function lookup(catalog: Record<string, unknown>, key: string): unknown {
  return key.split(".").reduce<unknown>((node, part) => (node !== null && typeof node === "object" ? (node as Record<string, unknown>)[part] : undefined), catalog);
}

/**
 * RED._ as Node-RED's i18n does it for our nodes' en-US catalogs: `__name__` replaced, and the
 * key itself when it is missing. (The test helper's RED._ returns every key unchanged.)
 */
export function englishTranslator(): (key: string, vars?: Record<string, unknown>) => string {
  const catalog = englishCatalog();
  return (key, vars = {}) => {
    const text = lookup(catalog, key);
    if (typeof text !== "string") return key;
    return text.replace(/__([A-Za-z0-9_]+?)__/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
  };
}
