"""A plugin folder's anatomy, and the files a source plugin hands the runtime.

A plugin is a folder: ``app.py`` and helper modules, ``plugin.toml``,
optionally ``assets/`` (text files such as a page's script) and its tests.
Plugins may import the shared guest library ``wasihost_guest`` from
``<plugins>/_shared/``. The build (a component per plugin) and the host (a
source plugin in the shared runtime) take the same files from a folder,
defined once here.

The guest has no file system, so for a source plugin the host reads the
modules, the library's modules if the plugin uses it, and the assets (as
the generated module ``_embedded_assets``) and passes their text to
``loader.load``. Reading is bounded (a folder is untrusted input: a stray
data file or a symlink to ``/`` must not be read into memory) and every
refusal names the file.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from wasihost.content import folder_hash

ENTRY = "app"
LIBRARY = "_shared"  # <plugins>/_shared/: the shared guest library's import path
GUEST_LIBRARY = "wasihost_guest"  # the package in it
ASSETS = "assets"  # <plugin>/assets/: files embedded as the module below
EMBEDDED_ASSETS = "_embedded_assets"
# Far above any real plugin (the dashboard, the largest, is ~90 KB in 9 files).
MAX_FILES = 256
MAX_BYTES = 4 * 1024 * 1024


class SourceError(ValueError):
    """A plugin folder that cannot be used; the message names the file."""


def _is_test(path: Path) -> bool:
    """Test modules run under pytest on the author's machine, never in the guest."""
    name = path.name
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _files(folder: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` below ``folder``, sorted; none hidden, none cached."""
    found = []
    for path in sorted(folder.rglob(pattern)):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            found.append(path)
    return found


def module_files(folder: Path) -> list[Path]:
    """The modules a plugin (or the library) consists of: its ``*.py`` but the tests."""
    return [path for path in _files(folder, "*.py") if not _is_test(path)]


def asset_files(plugin_dir: Path) -> list[Path]:
    """The files of the plugin's ``assets/`` folder (none without one)."""
    folder = plugin_dir / ASSETS
    return _files(folder, "*") if folder.is_dir() else []


# CPython 3.11's ast.parse is not safe on two threads at once ("AST constructor
# recursion depth mismatch", python/cpython#106905), and plugins load in parallel.
_PARSE_LOCK = threading.Lock()


def _imported(source: bytes) -> set[str]:
    """The top-level names a module imports (absolute imports only)."""
    names: set[str] = set()
    with _PARSE_LOCK:
        tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def library_for(plugin_dir: Path) -> Path | None:
    """The shared guest library's folder (``<plugins>/_shared``), if the plugin
    imports from it: the folder to put on its import path, at build and natively."""
    library = plugin_dir.resolve().parent / LIBRARY
    if not library.is_dir():
        return None
    packages = {p.name for p in library.iterdir() if (p / "__init__.py").is_file()}
    provided = packages | {p.stem for p in library.glob("*.py")}
    for path in module_files(plugin_dir):
        imported = _imports_of(path)
        if imported is None or imported & provided:  # unparsable: loading reports it
            return library
    return None


# What each module version imports, by (path, inode, mtime, size): the reload
# fallback asks every cycle which files make up each source plugin, and parsing
# its modules again each time would cost milliseconds a plugin on the event loop.
_IMPORTS: dict[tuple[str, int, int, int], frozenset[str] | None] = {}
_IMPORTS_MAX = 4096


def _imports_of(path: Path) -> frozenset[str] | None:
    """The names ``path`` imports (None: not Python); a link or a huge file
    imports nothing here: it is refused when the plugin is read, never read here."""
    stat = path.lstat()
    if path.is_symlink() or stat.st_size > MAX_BYTES:
        return frozenset()
    key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    if key not in _IMPORTS:
        try:
            found: frozenset[str] | None = frozenset(_imported(path.read_bytes()))
        except (SyntaxError, ValueError):
            found = None
        if len(_IMPORTS) >= _IMPORTS_MAX:
            _IMPORTS.clear()
        _IMPORTS[key] = found
    return _IMPORTS[key]


def _decode(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{exc.reason} at byte {exc.start}"
        raise SourceError(f"{path}: not UTF-8 text ({where}); {what}") from None


def _text(path: Path, what: str) -> str:
    return _decode(path.read_bytes(), path, what)


def _assets_source(plugin_dir: Path, texts: list[tuple[Path, str]]) -> str | None:
    """The module ``_embedded_assets`` for the asset files' (path, text)."""
    folder = plugin_dir / ASSETS
    entries = [f"    {path.relative_to(folder).as_posix()!r}: {text!r},\n" for path, text in texts]
    if not entries:
        return None
    docstring = f"{plugin_dir.name}/{ASSETS}/, embedded by wasihost (generated)."
    return f'"""{docstring}"""\n\nFILES = {{\n{"".join(entries)}}}\n'


def assets_module(plugin_dir: Path) -> str | None:
    """The source of the module ``_embedded_assets`` for the plugin's
    ``assets/`` files (None without any): ``FILES``, each file's path in the
    folder to its text, read as UTF-8 with no newline translation."""
    texts = []
    for path in asset_files(plugin_dir):
        _refuse_outside(path, plugin_dir)
        texts.append((path, _text(path, "assets are embedded as text")))
    return _assets_source(plugin_dir, texts)


def _own(modules: list[Path], assets: list[Path], manifest: Path) -> list[Path]:
    paths = {*modules, *assets, *([manifest] if manifest.is_file() else [])}
    return sorted(paths, key=lambda path: path.as_posix().encode())


def own_files(plugin_dir: Path) -> list[Path]:
    """The files that are the plugin itself, as the host reads them: its
    modules (not its tests), ``assets/`` and ``plugin.toml``. Its content hash
    (``wasihost.content``) and a bundle of it cover exactly these; the shared
    guest library beside it is the node's, not the plugin's."""
    return _own(module_files(plugin_dir), asset_files(plugin_dir), plugin_dir / "plugin.toml")


def read_own_files(plugin_dir: Path) -> list[tuple[str, bytes]]:
    """``own_files`` as (path in the folder, bytes), each refused if it is a
    link or too large, as loading refuses it."""
    found = own_files(plugin_dir)
    if len(found) > MAX_FILES:
        raise SourceError(f"{plugin_dir}: {len(found)} files, more than {MAX_FILES}")
    files = []
    for path in found:
        _refuse_outside(path, plugin_dir)
        files.append((path.relative_to(plugin_dir).as_posix(), path.read_bytes()))
    if sum(len(data) for _, data in files) > MAX_BYTES:
        raise SourceError(f"{plugin_dir}: files larger than {MAX_BYTES // 1024} KiB in all")
    return files


@dataclass(frozen=True)
class Sources:
    """The text of every module of one plugin version, that version's hash,
    and the plugin's content hash (what a pin names), both from the same bytes."""

    folder: Path
    files: tuple[tuple[str, str], ...]  # (module path, e.g. "app.py", text)
    sha256: str  # of the modules as loaded, the shared library's included
    content: str  # ``sha256:...`` of the plugin's own files (wasihost.content)

    @property
    def size(self) -> int:
        return sum(len(text) for _, text in self.files)


def _symlinked(path: Path, root: Path) -> bool:
    return any(p.is_symlink() for p in (path, *path.parents) if p.is_relative_to(root))


def _refuse_outside(path: Path, root: Path) -> None:
    """A file a plugin's folder offers must be in it and of a sane size: a link
    (to the host's config, to ``/``) or a huge file is refused before it is read."""
    if _symlinked(path, root):
        raise SourceError(f"{path}: a symlink; a plugin's files must be files in its folder")
    if path.stat().st_size > MAX_BYTES:
        raise SourceError(f"{path}: larger than {MAX_BYTES // 1024} KiB")


def read_sources(plugin_dir: Path) -> Sources:
    """A source plugin's modules, the library's if it uses it, and its assets.

    Each file is read once: the text handed to the guest and the content hash
    a pin is checked against come from the same bytes, so a file replaced
    while the plugin loads cannot pass the pin as one version and load as another.
    """
    if not (plugin_dir / f"{ENTRY}.py").is_file():
        raise SourceError(f"{plugin_dir}: no {ENTRY}.py (a source plugin's entry module)")
    modules, assets = module_files(plugin_dir), asset_files(plugin_dir)
    manifest = plugin_dir / "plugin.toml"
    found = [(plugin_dir, p) for p in modules]
    library = library_for(plugin_dir)
    if library is not None:
        found += [(library, p) for p in module_files(library)]
    if len(found) > MAX_FILES:
        raise SourceError(f"{plugin_dir}: {len(found)} modules, more than {MAX_FILES}")
    read: dict[Path, bytes] = {}

    def data(path: Path, base: Path) -> bytes:
        if path not in read:
            _refuse_outside(path, base)
            read[path] = path.read_bytes()
        return read[path]

    files: list[tuple[str, str]] = []
    for base, path in found:
        text = _decode(data(path, base), path, "a module must be UTF-8")
        files.append((path.relative_to(base).as_posix(), text))
    texts = [(p, _decode(data(p, plugin_dir), p, "assets are embedded as text")) for p in assets]
    embedded = _assets_source(plugin_dir, texts)
    if embedded is not None:
        files.append((f"{EMBEDDED_ASSETS}.py", embedded))
    if sum(len(text) for _, text in files) > MAX_BYTES:
        raise SourceError(f"{plugin_dir}: modules larger than {MAX_BYTES // 1024} KiB in all")
    digest = hashlib.sha256()
    for name, text in files:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    if manifest.is_file():
        digest.update(b"plugin.toml\0" + data(manifest, plugin_dir))
    own = [
        (p.relative_to(plugin_dir).as_posix(), data(p, plugin_dir))
        for p in _own(modules, assets, manifest)
    ]
    try:
        content = folder_hash(own)
    except ValueError as exc:  # a file name no listing can hold
        raise SourceError(f"{plugin_dir}: {exc}") from None
    return Sources(plugin_dir, tuple(files), digest.hexdigest(), content)


def folder_signature(plugin_dir: Path) -> tuple[tuple[str, int, int], ...] | None:
    """(path, mtime, size) of everything a source plugin is read from: the cheap
    check the reload fallback runs every cycle; None when the folder is gone."""
    if not plugin_dir.is_dir():
        return None
    try:
        paths = [*module_files(plugin_dir), *asset_files(plugin_dir), plugin_dir / "plugin.toml"]
        library = library_for(plugin_dir)
        if library is not None:
            paths += module_files(library)
        stats = [(p, p.stat()) for p in paths if p.exists()]
    except OSError:
        return None
    return tuple((p.as_posix(), s.st_mtime_ns, s.st_size) for p, s in stats)
