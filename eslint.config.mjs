import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".node-red/", "test-output/"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: {
      globals: { require: "readonly", module: "writable", process: "readonly", console: "readonly", __dirname: "readonly", RED: "readonly", $: "readonly" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
