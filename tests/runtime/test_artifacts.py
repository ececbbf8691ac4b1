"""Precompiled artifacts that travel: compiled for the baseline, and a refused
one logged with its reason (issue 20). A tiny component stands in for a plugin."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from wasmtime import component

from wasihost.runtime import artifacts
from wasihost.runtime.component import compile_file
from wasihost.runtime.engine import Engine

WAT = '(component (core module (func (export "f") (result i32) i32.const 1)))'
LSE = '"has_lse" is enabled, but not available on the host'


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


@pytest.fixture
def wasm(tmp_path: Path, engine: Engine) -> Path:
    path = tmp_path / "tiny.wasm"
    path.write_bytes(wasmtime.wat2wasm(WAT))
    assert artifacts.precompile(engine, path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_matching_artifact_loads_silently(
    engine: Engine, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "wasihost.runtime"):
        assert artifacts.load_precompiled(engine, wasm, sha(wasm)) is not None
    assert caplog.records == []
    tag = json.loads(wasm.with_suffix(".cwasm.tag").read_text())
    assert tag["code"] == "baseline" and tag["engine"] == engine.tag


def test_an_artifact_with_a_cpu_feature_this_cpu_lacks_is_logged_and_compiled(
    engine: Engine, wasm: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Pi 4 says of Pi 5 code: wasmtime refuses it at load, the tag matched."""

    def refuse(cls: type, engine: wasmtime.Engine, path: str) -> component.Component:
        raise wasmtime.WasmtimeError(LSE)

    monkeypatch.setattr(component.Component, "deserialize_file", classmethod(refuse))
    with caplog.at_level(logging.WARNING, "wasihost.runtime"):
        compiled = compile_file("tiny", engine, wasm)
    assert not compiled.precompiled  # compiled from the .wasm instead
    (record,) = caplog.records
    message = record.getMessage()
    assert str(wasm.with_suffix(".cwasm")) in message
    assert f"wasmtime refuses it: {LSE}" in message and "compiling tiny.wasm instead" in message


def test_an_artifact_of_another_engine_is_logged_with_both_tags(
    engine: Engine, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = "wasmtime-1.0.0;epoch_interruption=1;aarch64"
    tag = wasm.with_suffix(".cwasm.tag")
    tag.write_text(json.dumps({"engine": foreign, "wasm_sha256": sha(wasm)}))
    with caplog.at_level(logging.WARNING, "wasihost.runtime"):
        assert artifacts.load_precompiled(engine, wasm, sha(wasm)) is None
    assert f"built by {foreign}, this host is {engine.tag}" in caplog.text


def test_a_stale_artifact_is_logged(
    engine: Engine, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "wasihost.runtime"):
        assert artifacts.load_precompiled(engine, wasm, "0" * 64) is None
    assert "built from another tiny.wasm (it changed since)" in caplog.text


def test_no_artifact_is_not_worth_a_warning(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "plain.wasm"
    path.write_bytes(wasmtime.wat2wasm(WAT))
    with caplog.at_level(logging.WARNING, "wasihost.runtime"):
        assert artifacts.load_precompiled(engine, path, sha(path)) is None
    assert caplog.records == []


def test_artifacts_are_compiled_for_this_architectures_baseline(engine: Engine) -> None:
    """Config.target set to this machine's triple: no detected CPU features, and
    the code still loads into the host's own (native) engine."""
    target = artifacts.baseline_target()
    assert target in {"x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"}
    data = component.Component(artifacts.baseline_engine(), WAT).serialize()
    assert component.Component.deserialize(engine.wasmtime, data) is not None


def _reads_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every read_bytes of ``path``."""
    reads: list[Path] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self == path:
            reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return reads


def test_an_untouched_wasm_is_loaded_from_its_artifact_without_reading_it(
    engine: Engine, wasm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load path's trim: the tag recorded the file's inode, mtime, ctime and size
    when it hashed it; unchanged, the 18 MB of the shared runtime are not read again."""
    expected = sha(wasm)
    reads = _reads_of(wasm, monkeypatch)
    compiled = compile_file("tiny", engine, wasm)
    assert reads == []
    assert compiled.precompiled and compiled.sha256 == expected


def test_a_rewritten_wasm_is_read_and_hashed_again(
    tmp_path: Path, wasm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same bytes or not, a write moves the file's ctime: the tag no longer vouches."""
    other = Engine()  # a fresh engine: nothing remembered from the fixture's compile
    try:
        wasm.write_bytes(wasm.read_bytes())
        reads = _reads_of(wasm, monkeypatch)
        compiled = compile_file("tiny", other, wasm)
        assert reads == [wasm]
        assert compiled.precompiled  # the artifact matches the bytes, so it is still used
    finally:
        other.close()


def test_an_older_tag_gains_the_files_identity_at_the_next_build(
    engine: Engine, wasm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag_path = wasm.with_suffix(".cwasm.tag")
    tag = json.loads(tag_path.read_text())
    del tag["wasm_identity"]
    tag_path.write_text(json.dumps(tag))
    assert artifacts.vouched_sha256(engine, wasm, artifacts.file_identity(wasm)) is None
    assert not artifacts.precompile(engine, wasm)  # nothing compiled, the tag completed
    assert artifacts.vouched_sha256(engine, wasm, artifacts.file_identity(wasm)) == sha(wasm)
