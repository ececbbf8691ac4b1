// ESLint for the JavaScript and CSS plugins keep as real files (plugins/*/assets/:
// the dashboard's live-update script and style sheet). `make lint` runs it from the
// repository root; dev and CI only, nothing here reaches a Pi.
import css from "@eslint/css";
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";

export default defineConfig([
  {
    files: ["plugins/*/assets/**/*.js"],
    extends: [js.configs.recommended],
    languageOptions: {
      // Inline <script> in a browser page: a classic script, not a module.
      sourceType: "script",
      globals: globals.browser,
    },
    rules: {
      eqeqeq: "error",
      "no-implicit-globals": "error",
      "no-var": "error",
    },
  },
  {
    // render.py replaces this placeholder with the IAQ band table before serving the page.
    files: ["plugins/dashboard/assets/app.js"],
    languageOptions: { globals: { IAQ_TABLE: "readonly" } },
  },
  {
    files: ["plugins/*/assets/**/*.css"],
    language: "css/css",
    plugins: { css },
    extends: ["css/recommended"],
    rules: {
      // `[hidden] { display: none !important; }`: the hidden attribute must beat
      // any display rule, the one place !important is the point.
      "css/no-important": "off",
      // A progressive first choice: the monospace fonts after it cover the rest.
      "css/use-baseline": ["error", { allowPropertyValues: { "font-family": ["ui-monospace"] } }],
    },
  },
]);
