from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT
from inferneo_worker.errors import (
    ErrorCode,
    InternalError,
    InvalidArgumentError,
    LoadFailedError,
    ModelNotReadyError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
    WorkerError,
)


def _protocol_table_codes() -> set[str]:
    text = (REPO_ROOT / "docs" / "worker-protocol.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))


def test_codes_are_exactly_the_protocol_table() -> None:
    table = _protocol_table_codes()
    assert table, "the protocol doc's error table was not found"
    assert {code.value for code in ErrorCode} == table


def test_orchestrator_knows_every_worker_code() -> None:
    errors_ts = REPO_ROOT / "orchestrator" / "src" / "errors.ts"
    if not errors_ts.exists():
        pytest.skip("orchestrator/src/errors.ts is not there yet")
    declared = set(re.findall(r"^\s*([A-Z_]+): '([A-Z_]+)'", errors_ts.read_text(), re.MULTILINE))
    orchestrator_codes = {value for key, value in declared if key == value}
    assert {code.value for code in ErrorCode} <= orchestrator_codes


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgumentError("bad", field="x"), ErrorCode.INVALID_ARGUMENT),
        (NotFoundError("gone", model="m", version="1"), ErrorCode.NOT_FOUND),
        (ModelNotReadyError("later", model="m", version="1"), ErrorCode.MODEL_NOT_READY),
        (LoadFailedError("broken", model="m"), ErrorCode.LOAD_FAILED),
        (UnsupportedError("no", feature="BF16"), ErrorCode.UNSUPPORTED),
        (InternalError("bug"), ErrorCode.INTERNAL),
        (UnavailableError("busy"), ErrorCode.UNAVAILABLE),
    ],
)
def test_subclasses_carry_their_code(error: WorkerError, code: ErrorCode) -> None:
    assert error.code is code
    assert error.to_wire() == {"code": code.value, "message": error.message}
    assert code.value in repr(error)


def test_structured_fields() -> None:
    error = NotFoundError("no version 9", model="classifier", version="9")
    assert (error.model, error.version, str(error)) == ("classifier", "9", "no version 9")
    assert InvalidArgumentError("bad tensor", field="features").field == "features"
    assert UnsupportedError("no BF16", feature="BF16").feature == "BF16"


def test_code_can_be_overridden() -> None:
    assert WorkerError("x", code=ErrorCode.UNAVAILABLE).code is ErrorCode.UNAVAILABLE
    assert ErrorCode("INTERNAL") is ErrorCode.INTERNAL
    assert f"{ErrorCode.NOT_FOUND}" == "NOT_FOUND"
