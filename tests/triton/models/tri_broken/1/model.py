"""A model whose initialize always fails, for the tests of a load that Triton refuses."""

from typing import Any


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        raise RuntimeError("tri_broken cannot start: the weights are deliberately missing")

    def execute(self, requests: list[Any]) -> list[Any]:
        raise RuntimeError("unreachable")
