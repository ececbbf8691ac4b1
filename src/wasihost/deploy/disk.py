"""A node's deploy folder on disk: what each plugin's deployed versions are, and
how every start repairs what a power cut or a full disk left there.

The layout, under ``[deploy] dir``/<plugin>/ (``plugin_dir``)::

    current/           the deployed version that runs (a source folder, or plugin.wasm)
    previous/          the version it replaced (missing: the configured code was)
    incoming/          a delivery being verified and staged (left at start: a cut install)
    deployed.json      the record: what current/ and previous/ hold, the probation, the
                       last bundle rolled back here
    .rolling-back      current/ set aside while a rollback writes its record
    .restart-uncounted.<tag>  a restart on probation the record had no room to count

The crash-safety rule: deployed.json is written last, by rename, after the
moves it describes. So every start (``deployed_spec``) can tell a finished step
from a cut one by comparing the folders with the record: an install cut short
is undone to what the record says (``_finish_staging``), a rollback cut short
is undone or finished (``_finish_rolling_back``, ``_count_restart``). When the
record cannot be written (a full disk), the moves are undone on the spot, and
a version on probation whose restart cannot be counted is held back for that
start rather than run uncounted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from wasihost.atomic import fsync_path, write_atomically
from wasihost.bundle import archive
from wasihost.bundle.create import hash_plugin
from wasihost.config import HostConfig
from wasihost.deploy.protocol import State
from wasihost.deploy.report import Rollout
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.plugin import PluginSpec

# The node's logger: these lines are about its deployments, and operators filter on it.
log = logging.getLogger("wasihost.deploy.node")

CURRENT = "current"
PREVIOUS = "previous"
INCOMING = "incoming"
CHECKED = "plugin"  # incoming/plugin: the delivery as verified (no _shared beside it)
# deployed.json: {"current": {version, content_hash} | null, "previous": ... | null,
#   "probation": {restarts, since_ms, source, previous, bundle_sha256} while gated,
#   "rejected": {bundle_sha256, report} for the last version rolled back here}
RECORD = "deployed.json"
ROLLING = ".rolling-back"  # current/ while a rollback writes its record (undone if it cannot)
UNCOUNTED = ".restart-uncounted"  # + a tag of the bundle: a restart deployed.json could not count
MAX_PROBATION_RESTARTS = 1  # one more start on probation rolls the version back


def plugin_dir(config: HostConfig, name: str) -> Path:
    return Path(config.deploy.dir) / name


def _deployed_code(folder: Path) -> tuple[Path | None, Path | None]:
    """(source folder, wasm file) of a deployed version in ``folder``; (None, None)."""
    if (folder / archive.WASM).is_file():
        return None, folder / archive.WASM
    if (folder / "plugin.toml").is_file():
        return folder, None
    return None, None


def write_record(path: Path, record: dict[str, Any]) -> None:
    """deployed.json by rename: a crash leaves the old record or the new, never half."""
    write_atomically(path, (json.dumps(record, indent=2) + "\n").encode(), durable=True)


def read_record(folder: Path) -> dict[str, Any]:
    """deployed.json, or {} when there is none (or it cannot be read: then
    nothing is on probation and nothing is remembered as rejected)."""
    return _record_or_none(folder) or {}


def update_record(folder: Path, **changes: Any) -> None:
    """Set (or, given None, drop) keys of deployed.json, atomically."""
    record = read_record(folder)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    write_record(folder / RECORD, record)


def deployed_spec(config: HostConfig, spec: PluginSpec) -> PluginSpec:
    """``spec`` pointing at the deployed version, if there is one of the same kind.

    Called at start for every plugin, before any loads: a node that restarts
    runs what was deployed to it, not what its config names, unless that
    version has been on probation across too many restarts (``_count_restart``)."""
    if not config.deploy.enabled:
        return spec
    folder = plugin_dir(config, spec.name)
    try:
        _finish_staging(folder, spec.name)
    except OSError as exc:  # the host still starts, on what the folders hold
        log.warning("[%s] an install cut short could not be undone: %s", spec.name, exc)
    which: str | None = CURRENT
    try:
        which = _count_restart(folder, spec.name)
    except (OSError, ValueError, TypeError) as exc:  # a full disk must not stop the host
        log.warning("[%s] %s: probation not counted at this start: %s", spec.name, RECORD, exc)
    if which is None:
        return spec
    return pointed(spec, folder / which) or spec


def _record_or_none(folder: Path) -> dict[str, Any] | None:
    """deployed.json, {} when there is none, None when it is there but cannot be
    read: unlike ``read_record``, for a caller that deletes on what it says."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _finish_staging(folder: Path, name: str) -> None:
    """Undo an install that a power cut stopped among ``DeployNode._stage_files``' renames
    (its own undo runs only for an exception). The record is written last, so
    it is still the one before the install and names what current/ and
    previous/ should hold; incoming/ is still there too (the delivery removes
    it after the record), so a start without it hashes nothing.

    Left alone, a cut after previous/ -> incoming/previous loses the version to
    roll back to; after current/ -> previous/ the configured version runs; after
    incoming/plugin -> current/ the new version runs unrecorded, with no gate,
    reported as the old one (or, at a first install, named by no record)."""
    incoming = folder / INCOMING
    if not incoming.is_dir():
        return
    record = _record_or_none(folder)
    current, previous, replaced = folder / CURRENT, folder / PREVIOUS, incoming / PREVIOUS
    if record is None:  # nothing says which version is which: delete nothing
        log.warning(
            "[%s] %s cannot be read and %s/ is left from an install: not checked for a "
            "power cut, current/ runs as it is",
            name,
            RECORD,
            INCOMING,
        )
        return
    wanted, before = record.get("current"), record.get("previous")
    wanted_hash = wanted.get("content_hash") if isinstance(wanted, dict) else None
    before_hash = before.get("content_hash") if isinstance(before, dict) else None
    undone: str | None = None
    if not isinstance(wanted, dict):
        if current.exists():
            shutil.rmtree(current)
            undone = "current/ held a version no record names: removed, the configured one runs"
    elif not current.exists():
        if _holds(previous, wanted_hash):
            previous.rename(current)
            undone = f"{wanted.get('version')} moved back from previous/ to current/"
    elif previous.is_dir() and not _holds(current, wanted_hash) and _holds(previous, wanted_hash):
        shutil.rmtree(current)
        previous.rename(current)
        undone = f"an unrecorded version removed, {wanted.get('version')} back in current/"
    if (
        replaced.is_dir()
        and not previous.exists()
        and (undone is not None or _holds(replaced, before_hash))
    ):
        replaced.rename(previous)
        undone = (undone + "; " if undone else "") + "previous/ moved back"
    shutil.rmtree(incoming, ignore_errors=True)
    if undone is not None:
        log.warning("[%s] an install cut short (a power cut?) undone at start: %s", name, undone)


def _count_restart(folder: Path, name: str) -> str | None:
    """One more start while the deployed version is on probation. Past
    ``MAX_PROBATION_RESTARTS`` the host has kept stopping before the gate
    ended, likely under this version, so it is rolled back now, on disk,
    before anything loads it; ``DeployNode.start`` reports it. So is a version
    whose rollback the host stopped during (``restore_files`` finishes it).

    Returns the folder to load from: current/, unless the disk is too full to
    count this start or to roll back. Then the count goes on in an empty file
    (``_uncounted``, no data block needed), and past that the version on
    probation is held back for this start: previous/ (None: the configured
    version) runs, which needs no write. Otherwise a full disk, perhaps filled
    by that very version, would keep it running across every restart."""
    _finish_rolling_back(folder, name)
    record = read_record(folder)
    probation = record.get("probation")
    if not isinstance(probation, dict):
        forget_uncounted(folder)
        return CURRENT
    marker = _uncounted(folder, probation)
    forget_uncounted(folder, keep=marker)
    restarts = int(probation.get("restarts") or 0) + 1 + (1 if marker.exists() else 0)
    previous = record.get("previous")
    if (
        isinstance(previous, dict)
        and not (folder / PREVIOUS).is_dir()
        and _holds(folder / CURRENT, previous.get("content_hash"))
    ):  # a rollback moved previous/ back and stopped before its record: finish it
        reason = "a rollback cut short by a restart, finished at start"
    elif restarts <= MAX_PROBATION_RESTARTS:
        try:
            update_record(folder, probation={**probation, "restarts": restarts})
        except OSError as exc:
            try:
                marker.touch(exist_ok=False)
            except OSError:
                return _held_back(folder, name, record, exc)
            log.warning(
                "[%s] %s cannot be written (%s): this restart on probation is counted in %s",
                name,
                RECORD,
                exc,
                marker.name,
            )
            return CURRENT
        forget_uncounted(folder)
        return CURRENT
    else:
        reason = (
            f"on probation across {restarts} restarts: the host kept stopping before the "
            "health gate ended"
        )
    report = probation_report(name, record, probation, "rolled-back", reason)
    rejected = {"bundle_sha256": probation.get("bundle_sha256"), "report": report.to_json()}
    try:
        restore_files(folder, rejected)
    except OSError as exc:
        return _held_back(folder, name, record, exc)
    log.error("[%s] %s rolled back at start: %s", name, report.version, reason)
    forget_uncounted(folder)
    return CURRENT


def _finish_rolling_back(folder: Path, name: str) -> None:
    """.rolling-back is current/ set aside by ``restore_files``; its record
    is the commit. Still on probation, the record was not written: current/
    goes back if it is missing. Not on probation, it was: what was set aside is
    the rejected version, removed. Moving it back then would run it named by
    no record, with no gate (after a rollback to the configured version
    current/ is missing on purpose)."""
    rolling = folder / ROLLING
    if not rolling.is_dir():
        return
    record = _record_or_none(folder)
    if record is not None and not isinstance(record.get("probation"), dict):
        shutil.rmtree(rolling, ignore_errors=True)  # left over, it is harmless: tried again
    elif not (folder / CURRENT).exists():
        rolling.rename(folder / CURRENT)
        log.warning("[%s] a rollback cut short undone at start: current/ moved back", name)


def _uncounted(folder: Path, probation: dict[str, Any]) -> Path:
    """The empty file that counts a restart deployed.json could not: named for
    this probation (its bundle and when it began), so no other probation counts
    it, not even one of the same bundle installed again."""
    tag = f"{probation.get('bundle_sha256')} {probation.get('since_ms')}"
    return folder / f"{UNCOUNTED}.{hashlib.sha256(tag.encode()).hexdigest()[:16]}"


def forget_uncounted(folder: Path, keep: Path | None = None) -> None:
    """Once deployed.json has counted (or ended) the probation, no file does;
    run at every start too (keeping the file of the probation in force), so
    files left by a probation that ended otherwise do not pile up."""
    with contextlib.suppress(OSError):  # tidying: never a reason to skip the count
        for marker in folder.glob(f"{UNCOUNTED}.*"):
            if marker != keep:
                marker.unlink(missing_ok=True)


def _held_back(folder: Path, name: str, record: dict[str, Any], exc: OSError) -> str | None:
    """previous/ (None: the configured version) for this start, in place of a
    version on probation whose restarts can no longer be counted."""
    current, previous = record.get("current"), record.get("previous")
    held = current.get("version") if isinstance(current, dict) else None
    if isinstance(previous, dict) and (folder / PREVIOUS).is_dir():
        which: str | None = PREVIOUS
        instead = f"{previous.get('version')} from previous/"
    else:
        which, instead = None, "the configured version"
    log.error(
        "[%s] %s held back at this start: on probation, and %s cannot be written to count "
        "the restart or roll it back (%s); %s runs instead",
        name,
        held,
        RECORD,
        exc,
        instead,
    )
    return which


def restore_files(folder: Path, rejected: dict[str, Any] | None = None) -> None:
    """Undo ``DeployNode._stage_files``: previous/ back to current/, or no deployed version;
    ``rejected``: the rolled-back bundle to remember, so it is not installed again.

    Safe to run again after a crash midway: the record is written last, so if
    previous/ is gone while the record still names a previous version, current/
    is checked for that version's content (moved back already) before it goes.
    current/ waits aside until the record is written, so a record that cannot be
    written (a full disk) undoes the moves: the record still says what is where."""
    current, previous, rolling = folder / CURRENT, folder / PREVIOUS, folder / ROLLING
    record = read_record(folder)
    wanted = record.get("previous")
    moves: list[tuple[Path, Path]] = []
    restored = None
    if previous.is_dir():
        moves, restored = [(current, rolling), (previous, current)], wanted
    elif isinstance(wanted, dict) and _holds(current, wanted.get("content_hash")):
        restored = wanted
    else:
        moves = [(current, rolling)]
    new: dict[str, Any] = {"current": restored, "previous": None}
    if rejected is not None:
        new["rejected"] = rejected
    shutil.rmtree(rolling, ignore_errors=True)  # the rejected version of a rollback cut short
    moved: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            if source.exists():
                source.rename(target)
                moved.append((source, target))
        fsync_path(folder)  # the moves on the card before the record names their outcome
        write_record(folder / RECORD, new)
    except Exception:
        for source, target in reversed(moved):
            target.rename(source)
        raise
    shutil.rmtree(rolling, ignore_errors=True)


def unstage_files(folder: Path, before: dict[str, Any]) -> None:
    """Undo ``DeployNode._stage_files`` after its record was written: its moves in reverse,
    previous/ from incoming/ too. The record before goes back first, so a crash
    after it leaves what a power cut among the install's own renames leaves,
    which ``_finish_staging`` undoes at the next start."""
    write_record(folder / RECORD, before or {"current": None, "previous": None})
    current, previous, replaced = folder / CURRENT, folder / PREVIOUS, folder / INCOMING / PREVIOUS
    shutil.rmtree(current, ignore_errors=True)
    if previous.is_dir():
        previous.rename(current)
    if replaced.is_dir():
        replaced.rename(previous)


def _holds(folder: Path, content_hash: object) -> bool:
    """Whether ``folder`` holds a deployed version of that content hash."""
    source, wasm = _deployed_code(folder)
    code = source or wasm
    if code is None or not isinstance(content_hash, str):
        return False
    try:
        return hash_plugin(code) == content_hash
    except Exception:  # unreadable: not that version
        return False


def probation_report(
    name: str,
    record: dict[str, Any],
    probation: dict[str, Any],
    state: State,
    reason: str | None = None,
) -> Rollout:
    """The report of the version deployed.json has on probation."""
    current = record.get("current")
    current = current if isinstance(current, dict) else {}
    return Rollout(
        plugin=name,
        version=current.get("version"),
        content_hash=current.get("content_hash"),
        state=state,
        reason=reason,
        previous=probation.get("previous"),
        since_ms=int(probation.get("since_ms") or 0),
        source=probation.get("source") or "node",
    )


def pointed(spec: PluginSpec, folder: Path) -> PluginSpec | None:
    source, wasm = _deployed_code(folder)
    if source is not None and spec.source is not None:
        try:
            state = read_manifest(source).state
        except ManifestError:
            return None
        return dataclasses.replace(spec, source=source, state=state)
    if wasm is not None and spec.source is None:
        return dataclasses.replace(spec, wasm=wasm)
    return None
