// ESLint for the JavaScript and CSS plugins keep as real files (plugins/*/assets/:
// the dashboard's live-update script and style sheet). `make lint` runs it from the
// repository root; dev and CI only, nothing here reaches a Pi.
//
// Besides style, the rules below hold the two security rules of a plugin's page
// (tests/web/test_dashboard_lint.py shows each one firing):
// - the script handles values a plugin controls, so it writes them as text only:
//   no markup sink, nothing that runs a string as code, attributes set only by the
//   fixed names the page uses; and it talks to nothing but the host's shell;
// - the style sheet loads nothing: no @import, no url(), no image-set().
import css from "@eslint/css";
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";

// Writing one of these parses its value as HTML (or, for srcdoc, as a whole page).
const MARKUP_SINKS = [
  "innerHTML",
  "outerHTML",
  "insertAdjacentHTML",
  "createContextualFragment",
  "srcdoc",
];
// Whatever could reach another origin or run a string as code, by its global name.
const FORBIDDEN_GLOBALS = [
  "eval",
  "Function",
  "DOMParser",
  "fetch",
  "EventSource",
  "XMLHttpRequest",
  "WebSocket",
];
const SINK_NAMES = `/^(${MARKUP_SINKS.join("|")})$/`;
const text = "the script writes untrusted values as text only (textContent)";
const shellOnly = "the page talks to nothing but the host's shell (postMessage to parent)";

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
      // Strings run as code: eval, new Function, setTimeout("...") and setInterval("...").
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-script-url": "error",
      "no-restricted-globals": [
        "error",
        ...FORBIDDEN_GLOBALS.map((name) => ({ name, message: `${text}; ${shellOnly}.` })),
      ],
      "no-restricted-properties": [
        "error",
        ...MARKUP_SINKS.map((property) => ({ property, message: `${text}.` })),
        { object: "document", property: "write", message: `${text}.` },
        { object: "document", property: "writeln", message: `${text}.` },
        // window.fetch, self.eval, globalThis.WebSocket...: the globals above by another name.
        ...FORBIDDEN_GLOBALS.map((property) => ({ property, message: `${text}; ${shellOnly}.` })),
        { property: "sendBeacon", message: `${shellOnly}.` },
      ],
      "no-restricted-syntax": [
        "error",
        {
          // A sink named elsewhere: an object key (Object.assign(el, {innerHTML})) or a
          // string (Reflect.set(el, "innerHTML", v), el[name] with name = "innerHTML").
          selector: `Property > Identifier.key[name=${SINK_NAMES}], Literal[value=${SINK_NAMES}]`,
          message: `${text}.`,
        },
        {
          // Only the attribute names the page uses, and only as literals: an attribute
          // named by data could be an event handler (onclick) or a URL (href, src).
          selector:
            "CallExpression[callee.property.name=/^setAttribute/]" +
            ":not([callee.property.name='setAttribute'][arguments.0.type='Literal']" +
            "[arguments.0.value=/^(d|title)$/])",
          message: 'setAttribute only with a literal "d" or "title"; set text with textContent.',
        },
        {
          selector:
            "AssignmentExpression > Identifier.left[name='location'], " +
            "AssignmentExpression > MemberExpression.left[property.name='location'], " +
            "AssignmentExpression > MemberExpression.left[object.name='location'], " +
            "CallExpression[callee.object.name='location'][callee.property.name=/^(assign|replace)$/]",
          message: `the page never navigates; ${shellOnly}.`,
        },
        {
          // The target origin is the shell's, always: never "*" or a computed one.
          selector:
            "CallExpression:matches([callee.name='postMessage'], [callee.property.name='postMessage'])" +
            ":not([arguments.length=2][arguments.1.object.name='location']" +
            "[arguments.1.property.name='origin'])",
          message: "postMessage(message, location.origin): only to the shell, at this origin.",
        },
      ],
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
      // The page is self-contained: a style sheet that loads something (another sheet,
      // an image, a font) would reach out of the sandboxed frame, or show up broken.
      "no-restricted-syntax": [
        "error",
        { selector: "Atrule[name=/^import$/i]", message: "no @import: the page loads nothing." },
        { selector: "Url", message: "no url(): the page loads nothing." },
        {
          selector: "Function[name=/^(-webkit-)?image-set$/i]",
          message: "no image-set(): the page loads nothing.",
        },
      ],
    },
  },
]);
