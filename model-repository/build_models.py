"""Build the bundled example ONNX models of this repository, deterministically.

    python model-repository/build_models.py [--repository DIR] [--force]
    python model-repository/build_models.py --out DIR [--broken-version MODEL:VERSION ...]

Each model is a small MLP written with ``onnx.helper`` from weights drawn with a fixed numpy seed,
so every run writes byte-identical files and nothing is downloaded. Existing files are kept unless
``--force`` is given. Only the ``.onnx`` files are build outputs (git-ignored); every model's
``config.pbtxt`` (and ``text_stats/1/model.py``) is committed next to them.

``--out DIR`` writes a complete, servable copy of this repository into DIR instead (committed
files copied, every ONNX file built afresh), for tests that need a repository of their own. Each
``--broken-version MODEL:VERSION`` then writes a ``model.onnx`` of garbage bytes for that version
into the copy, so that loading it fails (LOAD_FAILED); a MODEL that is not in the repository gets
an ONNX ``config.pbtxt`` serving all its versions. Broken versions are never written into this
directory: the orchestrator loads every model of the served repository at start.

The graphs use opset 17 and IR version 8: ONNX Runtime from 1.14 on loads them, which covers the
runtime pinned in worker/requirements.txt and the one in Triton 24.x.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PRODUCER = "inferneo-build-models"

REPOSITORY = Path(__file__).resolve().parent
"""The served repository: this script's directory."""

BROKEN_ONNX = b"\x00\xffinferneo: deliberately broken model.onnx, not a protobuf\xff\x00\n" * 4
"""What ``--broken-version`` writes: ONNX Runtime refuses it ("Protobuf parsing failed")."""

BROKEN_CONFIG = """\
# Written by build_models.py --broken-version: every version of this model is a deliberately
# broken model.onnx, so that loading it fails.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: {{ all {{ }} }}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
"""

# A model name is one path component that is not hidden (as the worker requires); a version is a
# decimal number.
_MODEL_NAME_RE = re.compile(r"[^/\\\x00.][^/\\\x00]*")
_VERSION_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class MlpSpec:
    """A dense ReLU network ``widths[0] → … → widths[-1]`` with a dynamic batch dimension."""

    model: str
    version: int
    seed: int
    widths: tuple[int, ...]
    input_name: str
    output_name: str
    classifier: bool = False
    """Adds softmax ``output_name`` and an argmax ``label`` output of shape [batch, 1]."""


MODELS: tuple[MlpSpec, ...] = (
    MlpSpec("classifier", 1, 1, (16, 32, 3), "features", "probabilities", classifier=True),
    MlpSpec("classifier", 2, 2, (16, 32, 3), "features", "probabilities", classifier=True),
    MlpSpec("mlp_wide", 1, 11, (512, 2048, 2048, 10), "INPUT0", "OUTPUT0"),
    MlpSpec("mlp_tiny", 1, 21, (256, 512, 10), "INPUT0", "OUTPUT0"),
)


def _weights(rng: np.random.Generator, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    # He-scaled weights keep activations in a sane range through the ReLU layers.
    weight = rng.standard_normal((fan_in, fan_out)).astype(np.float32) * np.float32(
        np.sqrt(2.0 / fan_in)
    )
    bias = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
    return weight, bias


def build_graph(spec: MlpSpec) -> onnx.ModelProto:
    """The ONNX model of ``spec``; deterministic for a given spec."""
    rng = np.random.default_rng(spec.seed)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    current = spec.input_name
    layers = len(spec.widths) - 1
    for layer in range(layers):
        weight, bias = _weights(rng, spec.widths[layer], spec.widths[layer + 1])
        w_name, b_name = f"fc{layer}.weight", f"fc{layer}.bias"
        initializers += [
            numpy_helper.from_array(weight, w_name),
            numpy_helper.from_array(bias, b_name),
        ]
        last = layer == layers - 1
        matmul, added = f"fc{layer}.matmul", f"fc{layer}.out"
        if last and not spec.classifier:
            added = spec.output_name
        nodes.append(helper.make_node("MatMul", [current, w_name], [matmul], name=matmul))
        nodes.append(helper.make_node("Add", [matmul, b_name], [added], name=f"fc{layer}.add"))
        current = added
        if not last:
            relu = f"fc{layer}.relu"
            nodes.append(helper.make_node("Relu", [current], [relu], name=relu))
            current = relu

    width_out = spec.widths[-1]
    outputs = [
        helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ["batch", width_out])
    ]
    if spec.classifier:
        nodes.append(
            helper.make_node("Softmax", [current], [spec.output_name], name="softmax", axis=-1)
        )
        nodes.append(
            helper.make_node("ArgMax", [current], ["label"], name="argmax", axis=1, keepdims=1)
        )
        outputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch", 1]))

    graph = helper.make_graph(
        nodes,
        f"{spec.model}_v{spec.version}",
        [
            helper.make_tensor_value_info(
                spec.input_name, TensorProto.FLOAT, ["batch", spec.widths[0]]
            )
        ],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def model_path(repository: Path, spec: MlpSpec) -> Path:
    return repository / spec.model / str(spec.version) / "model.onnx"


def build(repository: Path, *, force: bool = False) -> list[Path]:
    """Write every model missing under ``repository`` (all of them with ``force``); returns the
    paths written."""
    written: list[Path] = []
    for spec in MODELS:
        path = model_path(repository, spec)
        if path.exists() and not force:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        data = build_graph(spec).SerializeToString(deterministic=True)
        # Write then rename, so a worker loading concurrently never sees half a file.
        partial = path.with_suffix(".onnx.partial")
        partial.write_bytes(data)
        partial.replace(path)
        written.append(path)
    return written


def export(out: Path, *, broken: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Write a servable copy of this repository into ``out`` and break the ``(model, version)``
    pairs of ``broken``; returns the model files written.

    Committed files (configs, ``model.py``, warm-up data) are copied over what ``out`` holds and
    every ONNX file is rebuilt, so that a copy broken by an earlier call is repaired; files that
    are not part of this repository (for example versions broken earlier) are left as they are.
    """
    if out.resolve() == REPOSITORY:
        raise ValueError(f"--out must not be the served repository {REPOSITORY}")
    shutil.copytree(
        REPOSITORY,
        out,
        ignore=shutil.ignore_patterns(
            "model.onnx", "*.partial", "__pycache__", "*.pyc", Path(__file__).name
        ),
        dirs_exist_ok=True,
    )
    written = build(out, force=True)
    for model, version in broken:
        written.append(write_broken_version(out, model, version))
    return written


def write_broken_version(repository: Path, model: str, version: str) -> Path:
    """Write a garbage ``model.onnx`` for ``model``/``version`` into ``repository`` (never the
    served one), with a ``config.pbtxt`` for a model it does not have yet."""
    if repository.resolve() == REPOSITORY:
        raise ValueError(f"refusing to break a version of the served repository {REPOSITORY}")
    model_dir = repository / model
    config = model_dir / "config.pbtxt"
    if not config.exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(BROKEN_CONFIG.format(name=model))
    path = model_dir / version / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BROKEN_ONNX)
    return path


def _model_version(text: str) -> tuple[str, str]:
    model, _, version = text.rpartition(":")
    if not _MODEL_NAME_RE.fullmatch(model) or not _VERSION_RE.fullmatch(version):
        raise argparse.ArgumentTypeError(
            f"expected MODEL:VERSION with a model directory name and a decimal version, "
            f"got {text!r}"
        )
    return model, version


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--repository",
        type=Path,
        default=REPOSITORY,
        help="model repository to build the ONNX files into (default: the directory of this "
        "script)",
    )
    target.add_argument(
        "--out",
        type=Path,
        help="write a complete copy of the repository (configs, model.py files and freshly "
        "built ONNX files) into this directory",
    )
    parser.add_argument("--force", action="store_true", help="rebuild models that already exist")
    parser.add_argument(
        "--broken-version",
        type=_model_version,
        action="append",
        default=[],
        metavar="MODEL:VERSION",
        help="with --out: write an invalid model.onnx for this version (repeatable); a model "
        "that is not in the repository gets an ONNX config.pbtxt",
    )
    args = parser.parse_args(argv)
    if args.out is not None:
        try:
            written = export(args.out, broken=args.broken_version)
        except ValueError as exc:
            parser.error(str(exc))
        for path in written:
            print(f"wrote {path} ({path.stat().st_size} bytes)")
        return 0
    if args.broken_version:
        parser.error("--broken-version needs --out: the served repository is never broken")
    written = build(args.repository, force=args.force)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    if not written:
        print(f"all {len(MODELS)} models are up to date in {args.repository} (--force rebuilds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
