"""model-repository/build_models.py: deterministic, idempotent, loadable by ONNX Runtime."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import BUNDLED_REPOSITORY
from inferneo_worker.model_config import load_model_config

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
