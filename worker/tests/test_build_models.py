"""model-repository/build_models.py: deterministic, idempotent, loadable by ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import BUNDLED_REPOSITORY
from inferneo_worker.errors import ErrorCode, LoadFailedError
from inferneo_worker.model_config import load_model_config
from inferneo_worker.model_host import ModelHost

EXPECTED = {
    "classifier/1/model.onnx",
    "classifier/2/model.onnx",
    "mlp_wide/1/model.onnx",
    "mlp_tiny/1/model.onnx",
}


def _relative(paths: list[Path], root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in paths}


def test_build_is_deterministic(
    tmp_path: Path, built_repository: Path, build_models: types.ModuleType
) -> None:
    written = build_models.build(tmp_path)
    assert _relative(written, tmp_path) == EXPECTED
    for relative in EXPECTED:
        assert (tmp_path / relative).read_bytes() == (built_repository / relative).read_bytes()


def test_build_is_idempotent_and_force_rebuilds(
    tmp_path: Path, build_models: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build_models.main(["--repository", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 4
    before = (tmp_path / "mlp_tiny/1/model.onnx").stat().st_mtime_ns
    assert build_models.main(["--repository", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "mlp_tiny/1/model.onnx").stat().st_mtime_ns == before
    assert build_models.main(["--repository", str(tmp_path), "--force"]) == 0
    assert capsys.readouterr().out.count("wrote ") == 4
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_models_match_their_configs(built_repository: Path, relative: str) -> None:
    path = built_repository / relative
    model = onnx.load(str(path))
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    name = relative.split("/")[0]
    config = load_model_config(BUNDLED_REPOSITORY / name / "config.pbtxt", default_name=name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [t.name for t in config.input]
    assert [o.name for o in session.get_outputs()] == [t.name for t in config.output]
    for node, tensor in zip(session.get_inputs(), config.input, strict=True):
        assert node.shape[1:] == list(tensor.dims)
        assert isinstance(node.shape[0], str), "the batch dimension is dynamic"
    batch = np.ones((3, config.input[0].dims[0]), dtype=np.float32)
    outputs = session.run(None, {config.input[0].name: batch})
    for array, tensor in zip(outputs, config.output, strict=True):
        assert array.shape == (3, *tensor.dims)


def test_classifier_outputs_are_softmax_and_argmax(built_repository: Path) -> None:
    session = ort.InferenceSession(
        str(built_repository / "classifier/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    features = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    probabilities, label = session.run(None, {"features": features})
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(label[:, 0], probabilities.argmax(axis=1))
    assert label.dtype == np.int64


# -- --out and --broken-version -----------------------------------------------------------------


def test_out_writes_a_complete_servable_copy(
    tmp_path: Path, build_models: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy"
    assert build_models.main(["--out", str(out)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 4
    committed = {
        str(p.relative_to(BUNDLED_REPOSITORY))
        for p in BUNDLED_REPOSITORY.rglob("*")
        if p.is_file()
        and p.name not in ("model.onnx", "build_models.py")
        and "__pycache__" not in p.parts
    }
    copied = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert copied == committed | EXPECTED
    host = ModelHost(out)
    for model, version in [("classifier", "1"), ("classifier", "2"), ("text_stats", "1")]:
        host.load(model, version)
    host.close()


def test_broken_versions_fail_to_load_and_a_second_export_repairs_them(
    tmp_path: Path, build_models: types.ModuleType
) -> None:
    out = tmp_path / "copy"
    args = ["--out", str(out), "--broken-version", "classifier:2"]
    assert build_models.main([*args, "--broken-version", "broken_model:1"]) == 0
    assert (out / "classifier/2/model.onnx").read_bytes() == build_models.BROKEN_ONNX
    host = ModelHost(out)
    host.load("classifier", "1")
    for model, version in [("classifier", "2"), ("broken_model", "1")]:
        with pytest.raises(LoadFailedError, match="ONNX Runtime cannot load") as caught:
            host.load(model, version)
        assert caught.value.code is ErrorCode.LOAD_FAILED
    assert host.loaded() == [("classifier", "1")]
    host.close()
    # The served repository is untouched.
    assert not (BUNDLED_REPOSITORY / "broken_model").exists()

    # Again into the same directory: bundled versions are rebuilt, extra ones are kept.
    assert build_models.main(["--out", str(out), "--broken-version", "classifier:3"]) == 0
    host = ModelHost(out)
    host.load("classifier", "2")
    for model, version in [("classifier", "3"), ("broken_model", "1")]:
        with pytest.raises(LoadFailedError):
            host.load(model, version)
    host.close()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--broken-version", "classifier:2"], "--broken-version needs --out"),
        (["--out", "{tmp}", "--broken-version", "classifier"], "expected MODEL:VERSION"),
        (["--out", "{tmp}", "--broken-version", "../up:1"], "expected MODEL:VERSION"),
        (["--out", "{tmp}", "--broken-version", "m:latest"], "expected MODEL:VERSION"),
        (["--out", "{bundled}"], "must not be the served repository"),
        (["--out", "{tmp}", "--repository", "{tmp}"], "not allowed with argument"),
    ],
)
def test_cli_errors_exit_2(
    tmp_path: Path,
    build_models: types.ModuleType,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
) -> None:
    argv = [a.format(tmp=tmp_path, bundled=BUNDLED_REPOSITORY) for a in args]
    with pytest.raises(SystemExit) as caught:
        build_models.main(argv)
    assert caught.value.code == 2
    assert fragment in capsys.readouterr().err
    with pytest.raises(ValueError, match="refusing to break"):
        build_models.write_broken_version(BUNDLED_REPOSITORY, "classifier", "9")


def test_cli_as_the_orchestrator_tests_run_it(tmp_path: Path) -> None:
    out = tmp_path / "repository"
    result = subprocess.run(
        [
            sys.executable,
            str(BUNDLED_REPOSITORY / "build_models.py"),
            "--out",
            str(out),
            "--broken-version",
            "broken_model:1",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "broken_model/config.pbtxt").is_file()
    assert (out / "broken_model/1/model.onnx").read_bytes()[:2] == b"\x00\xff"
    assert (out / "classifier/config.pbtxt").read_text() == (
        BUNDLED_REPOSITORY / "classifier/config.pbtxt"
    ).read_text()
