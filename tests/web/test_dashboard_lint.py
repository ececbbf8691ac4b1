"""The dashboard page's security rules are ESLint rules, and each one fires.

The script of a plugin's page handles values a plugin controls, so it may write
them as text only and talk to nothing but the host's shell; its style sheet
may load nothing. These were once searches of the script's and style sheet's
text for names like ``innerHTML``; they are rules of
``tools/eslint/eslint.config.js`` now, which ``make lint`` runs on every
plugin's ``assets/`` (and the first test here too). The other tests lint small
files with that same config and check that every construct the rules forbid
is refused, and that what the dashboard's script does on purpose is not.

The page inlines the files byte for byte (test_dashboard_render.py's
``test_the_style_sheet_and_script_are_the_asset_files_verbatim``), so the rules
hold for what a browser runs. What they are for is tested in that browser:
test_dashboard_browser.py (hostile values stay text, messages not from the
shell are ignored, and not one console error, which a request the host's
Content-Security-Policy blocks would be) and tests/hostile/test_hostile_page.py
(a page that tries to reach another origin).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ESLINT_DIR = ROOT / "tools" / "eslint"

# Each snippet runs where the dashboard's script does: a browser script, in a closure.
JS_PRELUDE = """\
"use strict";
(() => {
  const el = document.body;
  const x = String(location.hash);
  el.dataset.seen = x;
"""
JS_END = "})();\n"

# name -> (snippet, the rule that must refuse it)
REFUSED_JS = {
    "innerHTML": ("el.innerHTML = x;", "no-restricted-properties"),
    "innerHTML-computed": ('el["innerHTML"] = x;', "no-restricted-properties"),
    "innerHTML-object-key": ("Object.assign(el, { innerHTML: x });", "no-restricted-syntax"),
    "outerHTML-by-name": ('Reflect.set(el, "outerHTML", x);', "no-restricted-syntax"),
    "outerHTML": ("el.outerHTML = x;", "no-restricted-properties"),
    "insertAdjacentHTML": ('el.insertAdjacentHTML("beforeend", x);', "no-restricted-properties"),
    "document.write": ("document.write(x);", "no-restricted-properties"),
    "document.writeln": ("document.writeln(x);", "no-restricted-properties"),
    "eval": ("eval(x);", "no-eval"),
    "window.eval": ("window.eval(x);", "no-eval"),
    "new-Function": ("new Function(x)();", "no-new-func"),
    "Function": ("Function(x)();", "no-new-func"),
    "DOMParser": ('new DOMParser().parseFromString(x, "text/html");', "no-restricted-globals"),
    "createContextualFragment": (
        "document.createRange().createContextualFragment(x);",
        "no-restricted-properties",
    ),
    "srcdoc": ("el.srcdoc = x;", "no-restricted-properties"),
    "string-setTimeout": ('setTimeout("tick(" + x + ")", 10);', "no-implied-eval"),
    "string-setInterval": ('setInterval("tick()", 10);', "no-implied-eval"),
    "javascript-url": ('el.dataset.href = "javascript:void(0)";', "no-script-url"),
    "setAttribute-href": ('el.setAttribute("href", x);', "no-restricted-syntax"),
    "setAttribute-onclick": ('el.setAttribute("onclick", x);', "no-restricted-syntax"),
    "setAttribute-named-by-data": ('el.setAttribute(x, "1");', "no-restricted-syntax"),
    "setAttributeNS": ('el.setAttributeNS(null, "d", x);', "no-restricted-syntax"),
    "fetch": ("fetch(x);", "no-restricted-globals"),
    "window.fetch": ("window.fetch(x);", "no-restricted-properties"),
    "EventSource": ("new EventSource(x);", "no-restricted-globals"),
    "XMLHttpRequest": ("new XMLHttpRequest();", "no-restricted-globals"),
    "WebSocket": ("new WebSocket(x);", "no-restricted-globals"),
    "sendBeacon": ("navigator.sendBeacon(x, x);", "no-restricted-properties"),
    "location": ("location = x;", "no-restricted-syntax"),
    "window.location": ("window.location = x;", "no-restricted-syntax"),
    "location.href": ("location.href = x;", "no-restricted-syntax"),
    "location.assign": ("location.assign(x);", "no-restricted-syntax"),
    "postMessage-any-origin": ('parent.postMessage(x, "*");', "no-restricted-syntax"),
    "postMessage-no-origin": ("parent.postMessage(x);", "no-restricted-syntax"),
    "postMessage-global": ('postMessage(x, "*");', "no-restricted-syntax"),
}
# What the dashboard's script does on purpose.
ALLOWED_JS = """\
  el.textContent = x;
  el.setAttribute("d", x);
  el.setAttribute("title", x);
  el.hidden = !x;
  el.classList.toggle("bad", !x);
  el.style.backgroundColor = "transparent";
  parent.postMessage({ type: "reload" }, location.origin);
  setTimeout(() => el.remove(), 10);
"""

REFUSED_CSS = {
    "@import": '@import "x.css";\n',
    "@import-url": "@import url(x.css);\n",
    "url": "a { background: url(x.png); }\n",
    "URL-quoted": 'a { background: URL("x.png"); }\n',
    "font-face-src": "@font-face { font-family: f; src: url(f.woff2); }\n",
    "image-set": 'a { background-image: image-set("x.png" 1x); }\n',
}
ALLOWED_CSS = """\
:root { --text: #000; }
a { color: var(--text); background: linear-gradient(#000, #fff); }
"""


def js_file(case: str) -> str:
    return f"refused-{list(REFUSED_JS).index(case)}.js"


def css_file(case: str) -> str:
    return f"refused-{list(REFUSED_CSS).index(case)}.css"


@pytest.fixture(scope="module")
def lint_run() -> subprocess.CompletedProcess[str]:
    """``tools/eslint/lint`` as ``make lint`` runs it: it installs ESLint on first use,
    or says why it skips (no Node.js and npm, or a Node.js older than ESLint supports)."""
    done = subprocess.run(
        [str(ESLINT_DIR / "lint")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if "SKIPPED" in done.stdout:
        pytest.skip(done.stdout.strip().removeprefix("==> lint: "))
    return done


@pytest.fixture(scope="module")
def findings(
    lint_run: subprocess.CompletedProcess[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[tuple[str | None, str]]]:
    """Every case as a file of a plugin's assets/, linted in one ESLint run with the
    repository's config; file name -> [(rule, message)]."""
    root = tmp_path_factory.mktemp("eslint")
    assets = root / "plugins" / "case" / "assets"
    assets.mkdir(parents=True)
    files: dict[str, str] = {"allowed.js": JS_PRELUDE + ALLOWED_JS + JS_END}
    files["allowed.css"] = ALLOWED_CSS
    for case, (snippet, _) in REFUSED_JS.items():
        files[js_file(case)] = f"{JS_PRELUDE}  {snippet}\n{JS_END}"
    for case, sheet in REFUSED_CSS.items():
        files[css_file(case)] = sheet
    for name, source in files.items():
        (assets / name).write_text(source, encoding="utf-8")
    eslint = ESLINT_DIR / "node_modules" / ".bin" / "eslint"
    done = subprocess.run(
        [str(eslint), "--config", str(ESLINT_DIR / "eslint.config.js"), "--format", "json"]
        + [str(assets / name) for name in files],
        cwd=root,  # where the config's plugins/*/assets/ patterns are matched
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: problems found
    results = json.loads(done.stdout)
    assert len(results) == len(files)
    return {
        Path(result["filePath"]).name: [(m["ruleId"], m["message"]) for m in result["messages"]]
        for result in results
    }


def test_the_plugins_assets_pass_eslint(lint_run: subprocess.CompletedProcess[str]) -> None:
    assert lint_run.returncode == 0, lint_run.stdout + lint_run.stderr


@pytest.mark.parametrize("case", REFUSED_JS)
def test_eslint_refuses_a_script_that_writes_markup_runs_strings_or_reaches_out(
    findings: dict[str, list[tuple[str | None, str]]], case: str
) -> None:
    problems = findings[js_file(case)]
    assert REFUSED_JS[case][1] in {rule for rule, _ in problems}, problems


@pytest.mark.parametrize("case", REFUSED_CSS)
def test_eslint_refuses_a_style_sheet_that_loads_anything(
    findings: dict[str, list[tuple[str | None, str]]], case: str
) -> None:
    problems = findings[css_file(case)]
    assert problems, REFUSED_CSS[case]
    for rule, message in problems:
        assert rule == "no-restricted-syntax" and "the page loads nothing" in message, problems


def test_eslint_allows_what_the_dashboard_does(
    findings: dict[str, list[tuple[str | None, str]]],
) -> None:
    assert findings["allowed.js"] == []
    assert findings["allowed.css"] == []
