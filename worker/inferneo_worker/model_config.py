"""Triton model configuration: a protobuf text-format parser and the typed ``ModelConfig``.

``parse_text_format`` turns ``config.pbtxt`` into a generic dict without knowing the schema: a key
that appears once maps to its value, a key that repeats (or whose value is a ``[ … ]`` list) maps to
a list; enum values are kept as their identifier strings, ``true``/``false`` become bools.
``ModelConfig.from_dict`` then applies the part of Triton's ``model_config.proto`` the worker uses,
with Triton's field names, and normalises single-or-repeated fields. Map fields (``parameters``,
``model_warmup.inputs``) arrive as the text format writes them: repeated ``{ key: … value: … }``
entries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from .errors import ErrorCode, WorkerError

TRITON_TO_KSERVE: Final[Mapping[str, str]] = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
    "TYPE_BF16": "BF16",
}
"""Triton ``DataType`` enum names → KServe-v2 datatype names."""

INSTANCE_KINDS: Final = frozenset({"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"})

WarmupData = Literal["zero_data", "random_data", "input_data_file"]
"""The members of ``ModelWarmup.Input``'s ``input_data_type`` oneof."""

WARMUP_DATA: Final[tuple[WarmupData, ...]] = ("zero_data", "random_data", "input_data_file")


class ModelConfigError(WorkerError):
    """``config.pbtxt`` is not valid text format, or not a valid model configuration.

    ``source`` is the file (or ``"<string>"``); ``line``/``column`` (1-based) locate syntax errors;
    ``field`` is the dotted path of a semantically wrong field, such as ``input[0].dims``.
    """

    default_code = ErrorCode.LOAD_FAILED

    def __init__(
        self,
        reason: str,
        *,
        source: str,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        where = source if line is None else f"{source}:{line}:{column}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {reason}")
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        self.field = field


# ---------------------------------------------------------------------------------------------
# Text format
# ---------------------------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>[ \t\r\n\f\v]+)
  | (?P<comment>\#[^\n]*)
  | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fF]?)(?![\w.]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}\[\]<>:,;\-])
    """,
    re.VERBOSE,
)

_SIMPLE_ESCAPES: Final[Mapping[str, bytes]] = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
    "?": b"?",
}

_CLOSING: Final[Mapping[str, str]] = {"{": "}", "<": ">"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["number", "ident", "string", "punct", "eof"]
    text: str
    line: int
    column: int


def _tokenize(text: str, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise ModelConfigError(
                f"unexpected character {text[pos]!r}",
                source=source,
                line=line,
                column=pos - line_start + 1,
            )
        kind = match.lastgroup
        value = match.group()
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, value, line, pos - line_start + 1))  # type: ignore[arg-type]
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = pos + value.rindex("\n") + 1
        pos = match.end()
    tokens.append(_Token("eof", "", line, pos - line_start + 1))
    return tokens


class _Parser:
    """Recursive descent over the token list; holds the position, nothing else."""

    def __init__(self, text: str, source: str) -> None:
        self._source = source
        self._tokens = _tokenize(text, source)
        self._index = 0

    def parse(self) -> dict[str, Any]:
        return self._message(closing="")

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _error(self, token: _Token, reason: str) -> ModelConfigError:
        return ModelConfigError(reason, source=self._source, line=token.line, column=token.column)

    def _describe(self, token: _Token) -> str:
        return "end of input" if token.kind == "eof" else repr(token.text)

    def _message(self, closing: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        while True:
            token = self._peek()
            if closing and token.kind == "punct" and token.text == closing:
                self._next()
                return fields
            if token.kind == "eof":
                if closing:
                    raise self._error(token, f"expected '{closing}' before end of input")
                return fields
            if token.kind != "ident":
                raise self._error(token, f"expected a field name, got {self._describe(token)}")
            self._next()
            value, is_list = self._field_value(token)
            _add_field(fields, token.text, value, is_list=is_list)
            separator = self._peek()
            if separator.kind == "punct" and separator.text in ",;":
                self._next()

    def _field_value(self, name: _Token) -> tuple[Any, bool]:
        token = self._peek()
        if token.kind == "punct" and token.text in _CLOSING:
            self._next()
            return self._message(_CLOSING[token.text]), False
        # The colon is optional before a message or a list of messages: `input [ { … } ]`.
        if token.kind == "punct" and token.text == "[":
            self._next()
            return self._list(), True
        if not (token.kind == "punct" and token.text == ":"):
            raise self._error(
                token,
                f"expected ':' or '{{' after field '{name.text}', got {self._describe(token)}",
            )
        self._next()
        token = self._peek()
        if token.kind == "punct" and token.text == "[":
            self._next()
            return self._list(), True
        return self._value(), False

    def _list(self) -> list[Any]:
        items: list[Any] = []
        token = self._peek()
        if token.kind == "punct" and token.text == "]":
            self._next()
            return items
        while True:
            items.append(self._value())
            token = self._next()
            if token.kind == "punct" and token.text == "]":
                return items
            if not (token.kind == "punct" and token.text == ","):
                raise self._error(
                    token, f"expected ',' or ']' in list, got {self._describe(token)}"
                )

    def _value(self) -> Any:
        token = self._next()
        if token.kind == "punct" and token.text in _CLOSING:
            return self._message(_CLOSING[token.text])
        if token.kind == "punct" and token.text == "-":
            operand = self._next()
            if operand.kind == "number":
                return -self._number(operand)
            if operand.kind == "ident" and operand.text.lower() in ("inf", "infinity", "nan"):
                return -float(operand.text)
            raise self._error(
                operand, f"expected a number after '-', got {self._describe(operand)}"
            )
        if token.kind == "number":
            return self._number(token)
        if token.kind == "string":
            parts = [self._string(token)]
            # Adjacent string literals concatenate, as in C and in protobuf's own parser.
            while self._peek().kind == "string":
                parts.append(self._string(self._next()))
            return b"".join(parts).decode("utf-8")
        if token.kind == "ident":
            if token.text in ("true", "True"):
                return True
            if token.text in ("false", "False"):
                return False
            return token.text
        raise self._error(token, f"expected a value, got {self._describe(token)}")

    def _number(self, token: _Token) -> int | float:
        text = token.text
        if text[:2] in ("0x", "0X"):
            return int(text, 16)
        if any(c in text for c in ".eEfF"):
            return float(text.rstrip("fF"))
        if len(text) > 1 and text.startswith("0"):
            try:
                return int(text, 8)
            except ValueError:
                raise self._error(token, f"invalid octal integer {text}") from None
        return int(text)

    def _string(self, token: _Token) -> bytes:
        body = token.text[1:-1]
        out = bytearray()
        i = 0
        while i < len(body):
            char = body[i]
            if char != "\\":
                out += char.encode("utf-8")
                i += 1
                continue
            escape = body[i + 1]
            if escape in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[escape]
                i += 2
            elif escape in "01234567":
                digits = re.match(r"[0-7]{1,3}", body[i + 1 :])
                assert digits is not None  # the first character is an octal digit
                out.append(int(digits.group(), 8) & 0xFF)
                i += 1 + len(digits.group())
            elif escape in "xX":
                digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
                if digits is None:
                    raise self._error(token, "\\x escape needs hex digits")
                out.append(int(digits.group(), 16))
                i += 2 + len(digits.group())
            elif escape in "uU":
                width = 4 if escape == "u" else 8
                digits = re.fullmatch(r"[0-9a-fA-F]+", body[i + 2 : i + 2 + width])
                if digits is None or len(digits.group()) != width:
                    raise self._error(token, f"\\{escape} escape needs {width} hex digits")
                out += chr(int(digits.group(), 16)).encode("utf-8", errors="surrogatepass")
                i += 2 + width
            else:
                raise self._error(token, f"unknown escape sequence \\{escape}")
        return bytes(out)


def _add_field(fields: dict[str, Any], name: str, value: Any, *, is_list: bool) -> None:
    if name not in fields:
        fields[name] = value
        return
    existing = fields[name]
    # A field seen again is repeated: keep every occurrence in order, whichever syntax each used.
    merged = existing if isinstance(existing, list) else [existing]
    fields[name] = [*merged, *value] if is_list else [*merged, value]


def parse_text_format(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse protobuf text format into a generic dict (see the module docstring for the shape).

    Raises ``ModelConfigError`` with ``line``/``column`` on a syntax error, including a string
    literal that is not valid UTF-8.
    """
    try:
        return _Parser(text, source).parse()
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"string is not valid UTF-8: {exc}", source=source) from None


# ---------------------------------------------------------------------------------------------
# Typed configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorConfig:
    """One ``input`` or ``output`` entry. ``dims`` excludes the batch dimension, as in Triton."""

    name: str
    data_type: str
    """Triton's enum name, e.g. ``TYPE_FP32``."""
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    """The shape the model itself sees (without batch dimension), when it differs from dims."""
    optional: bool = False

    @property
    def datatype(self) -> str:
        """The KServe datatype name, e.g. ``FP32`` or ``BYTES``."""
        return TRITON_TO_KSERVE[self.data_type]


@dataclass(frozen=True)
class InstanceGroup:
    """One ``instance_group`` entry; the worker runs every kind on the CPU."""

    name: str = ""
    count: int = 1
    kind: str = "KIND_AUTO"


@dataclass(frozen=True)
class VersionPolicy:
    """Which numeric version directories are served; Triton's default is the latest one."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Iterable[int]) -> frozenset[int]:
        """The subset of ``available`` versions this policy serves."""
        present = sorted(set(available))
        if self.kind == "all":
            return frozenset(present)
        if self.kind == "specific":
            return frozenset(v for v in present if v in self.versions)
        return frozenset(present[-self.num_versions :] if self.num_versions > 0 else ())

    def to_json(self) -> dict[str, Any]:
        if self.kind == "all":
            return {"all": {}}
        if self.kind == "specific":
            return {"specific": {"versions": list(self.versions)}}
        return {"latest": {"num_versions": self.num_versions}}


@dataclass(frozen=True)
class WarmupInput:
    """One entry of a warm-up sample's ``inputs`` map (Triton's ``ModelWarmup.Input``)."""

    name: str
    """The map key: the model input this entry feeds."""
    data_type: str
    """Triton's enum name, e.g. ``TYPE_FP32``."""
    dims: tuple[int, ...]
    """Without the batch dimension, as in Triton."""
    data: WarmupData
    """Which member of the ``input_data_type`` oneof is set. As in Triton, the bool value of
    ``zero_data`` / ``random_data`` is not looked at: setting the field is what counts."""
    input_data_file: str = ""
    """With ``data == "input_data_file"``: a file in the model directory's ``warmup/`` folder."""

    @property
    def datatype(self) -> str:
        """The KServe datatype name, e.g. ``FP32`` or ``BYTES``."""
        return TRITON_TO_KSERVE[self.data_type]

    def to_json(self) -> dict[str, Any]:
        value: object = self.input_data_file if self.data == "input_data_file" else True
        return {"data_type": self.data_type, "dims": list(self.dims), self.data: value}


@dataclass(frozen=True)
class WarmupSample:
    """One ``model_warmup`` entry (Triton's ``ModelWarmup``): a request sample run at load."""

    name: str
    batch_size: int
    """Requests in the sample, each of batch size 1; Triton skips a sample whose batch_size is 0
    (the proto3 default)."""
    inputs: tuple[WarmupInput, ...]
    count: int = 0
    """Times the sample is run; 0 (the default) means once, as in Triton."""

    @property
    def iterations(self) -> int:
        return max(1, self.count)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "inputs": {i.name: i.to_json() for i in self.inputs},
            "count": self.count,
        }


@dataclass(frozen=True)
class ModelConfig:
    """The part of Triton's ``ModelConfig`` the worker uses, with Triton's field names."""

    name: str
    platform: str = ""
    backend: str = ""
    max_batch_size: int = 0
    input: tuple[TensorConfig, ...] = ()
    output: tuple[TensorConfig, ...] = ()
    instance_group: tuple[InstanceGroup, ...] = ()
    dynamic_batching: dict[str, Any] | None = None
    """Kept as parsed: the orchestrator's batcher reads it, the worker does not."""
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    parameters: dict[str, str] = field(default_factory=dict)
    """``parameters`` map, flattened to ``key → string_value``."""
    default_model_filename: str = ""
    model_warmup: tuple[WarmupSample, ...] = ()
    """Samples run, in order, after a version loads and before it is reported loaded."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Everything parsed, including fields this class does not model."""

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any], *, default_name: str, source: str = "<string>"
    ) -> ModelConfig:
        """Validate a parsed config; a missing ``name`` takes ``default_name`` (the directory)."""
        reader = _Reader(source)
        name = reader.string(raw, "name", default=default_name)
        if not name:
            raise ModelConfigError("must not be empty", source=source, field="name")
        max_batch_size = reader.integer(raw, "max_batch_size", default=0)
        if max_batch_size < 0:
            raise ModelConfigError(
                f"must be >= 0, got {max_batch_size}", source=source, field="max_batch_size"
            )
        inputs = tuple(
            reader.tensor(entry, f"input[{i}]", is_input=True)
            for i, entry in enumerate(reader.messages(raw, "input"))
        )
        outputs = tuple(
            reader.tensor(entry, f"output[{i}]", is_input=False)
            for i, entry in enumerate(reader.messages(raw, "output"))
        )
        for kind, tensors in (("input", inputs), ("output", outputs)):
            seen: set[str] = set()
            for tensor in tensors:
                if tensor.name in seen:
                    raise ModelConfigError(
                        f"duplicate {kind} name '{tensor.name}'", source=source, field=kind
                    )
                seen.add(tensor.name)
        groups = tuple(
            reader.instance_group(entry, f"instance_group[{i}]")
            for i, entry in enumerate(reader.messages(raw, "instance_group"))
        )
        dynamic_batching = raw.get("dynamic_batching")
        if dynamic_batching is not None and not isinstance(dynamic_batching, dict):
            raise ModelConfigError("must be a message", source=source, field="dynamic_batching")
        return cls(
            name=name,
            platform=reader.string(raw, "platform", default=""),
            backend=reader.string(raw, "backend", default=""),
            max_batch_size=max_batch_size,
            input=inputs,
            output=outputs,
            instance_group=groups,
            dynamic_batching=dynamic_batching,
            version_policy=reader.version_policy(raw.get("version_policy")),
            parameters=reader.parameters(raw),
            default_model_filename=reader.string(raw, "default_model_filename", default=""),
            model_warmup=reader.model_warmup(raw),
            raw=dict(raw),
        )

    def to_json(self) -> dict[str, Any]:
        """The config as Triton's JSON form (what Python models get as ``args["model_config"]``)."""
        out: dict[str, Any] = dict(self.raw)
        out.update(
            {
                "name": self.name,
                "platform": self.platform,
                "backend": self.backend,
                "version_policy": self.version_policy.to_json(),
                "max_batch_size": self.max_batch_size,
                "input": [_tensor_json(t, is_input=True) for t in self.input],
                "output": [_tensor_json(t, is_input=False) for t in self.output],
                "instance_group": [
                    {"name": g.name, "kind": g.kind, "count": g.count, "gpus": []}
                    for g in self.instance_group
                ],
                "parameters": {k: {"string_value": v} for k, v in self.parameters.items()},
                "default_model_filename": self.default_model_filename,
            }
        )
        if self.dynamic_batching is not None:
            out["dynamic_batching"] = self.dynamic_batching
        if self.model_warmup:
            out["model_warmup"] = [sample.to_json() for sample in self.model_warmup]
        return out


def _tensor_json(tensor: TensorConfig, *, is_input: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": tensor.name,
        "data_type": tensor.data_type,
        "dims": list(tensor.dims),
        "is_shape_tensor": False,
    }
    if is_input:
        out.update(
            {"format": "FORMAT_NONE", "allow_ragged_batch": False, "optional": tensor.optional}
        )
    else:
        out["label_filename"] = ""
    if tensor.reshape is not None:
        out["reshape"] = {"shape": list(tensor.reshape)}
    return out


class _Reader:
    """Typed access to the generic dict, raising ``ModelConfigError`` that names the field."""

    def __init__(self, source: str) -> None:
        self._source = source

    def _fail(self, path: str, reason: str) -> ModelConfigError:
        return ModelConfigError(reason, source=self._source, field=path)

    def string(self, raw: Mapping[str, Any], key: str, *, default: str, path: str = "") -> str:
        value = raw.get(key, default)
        if not isinstance(value, str):
            raise self._fail(path + key, f"must be a string, got {value!r}")
        return value

    def integer(self, raw: Mapping[str, Any], key: str, *, default: int, path: str = "") -> int:
        value = raw.get(key, default)
        if type(value) is not int:
            raise self._fail(path + key, f"must be an integer, got {value!r}")
        return value

    def boolean(self, raw: Mapping[str, Any], key: str, *, path: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise self._fail(path + key, f"must be true or false, got {value!r}")
        return value

    def messages(self, raw: Mapping[str, Any], key: str, path: str = "") -> list[dict[str, Any]]:
        value = raw.get(key, [])
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict):
                raise self._fail(
                    path + key, f"must be a message or a list of messages, got {item!r}"
                )
        return items

    def int_list(self, raw: Mapping[str, Any], key: str, *, path: str) -> tuple[int, ...]:
        value = raw.get(key, [])
        items = value if isinstance(value, list) else [value]
        if not all(type(d) is int for d in items):
            raise self._fail(path + key, f"must be a list of integers, got {value!r}")
        return tuple(items)

    def tensor(self, raw: Mapping[str, Any], path: str, *, is_input: bool) -> TensorConfig:
        prefix = path + "."
        name = self.string(raw, "name", default="", path=prefix)
        if not name:
            raise self._fail(prefix + "name", "is required")
        data_type = self.string(raw, "data_type", default="TYPE_INVALID", path=prefix)
        if data_type not in TRITON_TO_KSERVE:
            raise self._fail(prefix + "data_type", f"unknown or missing data type {data_type!r}")
        dims = self.int_list(raw, "dims", path=prefix)
        if any(d < -1 or d == 0 for d in dims):
            raise self._fail(
                prefix + "dims", f"dimensions must be positive or -1, got {list(dims)}"
            )
        reshape: tuple[int, ...] | None = None
        if "reshape" in raw:
            reshape_message = raw["reshape"]
            if not isinstance(reshape_message, dict):
                raise self._fail(prefix + "reshape", "must be a message { shape: [...] }")
            reshape = self.int_list(reshape_message, "shape", path=prefix + "reshape.")
            if -1 not in dims and -1 not in reshape and math.prod(dims) != math.prod(reshape):
                raise self._fail(
                    prefix + "reshape",
                    f"shape {list(reshape)} does not have as many elements as dims {list(dims)}",
                )
        optional = self.boolean(raw, "optional", path=prefix) if is_input else False
        return TensorConfig(name, data_type, dims, reshape, optional)

    def instance_group(self, raw: Mapping[str, Any], path: str) -> InstanceGroup:
        prefix = path + "."
        count = self.integer(raw, "count", default=1, path=prefix)
        if count < 1:
            raise self._fail(prefix + "count", f"must be >= 1, got {count}")
        kind = self.string(raw, "kind", default="KIND_AUTO", path=prefix)
        if kind not in INSTANCE_KINDS:
            raise self._fail(prefix + "kind", f"unknown instance kind {kind!r}")
        return InstanceGroup(self.string(raw, "name", default="", path=prefix), count, kind)

    def version_policy(self, raw: object) -> VersionPolicy:
        if raw is None:
            return VersionPolicy()
        if not isinstance(raw, dict) or len(raw) != 1:
            raise self._fail(
                "version_policy", "must be a message with exactly one of latest, all, specific"
            )
        ((kind, body),) = raw.items()
        if not isinstance(body, dict):
            raise self._fail(f"version_policy.{kind}", "must be a message")
        if kind == "all":
            return VersionPolicy("all")
        if kind == "latest":
            num = self.integer(body, "num_versions", default=1, path="version_policy.latest.")
            if num < 1:
                raise self._fail("version_policy.latest.num_versions", f"must be >= 1, got {num}")
            return VersionPolicy("latest", num_versions=num)
        if kind == "specific":
            versions = self.int_list(body, "versions", path="version_policy.specific.")
            return VersionPolicy("specific", versions=versions)
        raise self._fail("version_policy", f"unknown policy {kind!r}")

    def parameters(self, raw: Mapping[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for index, entry in enumerate(self.messages(raw, "parameters")):
            path = f"parameters[{index}]."
            key = self.string(entry, "key", default="", path=path)
            value = entry.get("value", {})
            if not key or not isinstance(value, dict):
                raise self._fail(
                    path.rstrip("."), 'must be { key: "…" value: { string_value: "…" } }'
                )
            out[key] = self.string(value, "string_value", default="", path=path + "value.")
        return out

    def model_warmup(self, raw: Mapping[str, Any]) -> tuple[WarmupSample, ...]:
        return tuple(
            self._warmup_sample(entry, f"model_warmup[{index}]")
            for index, entry in enumerate(self.messages(raw, "model_warmup"))
        )

    def _warmup_sample(self, raw: Mapping[str, Any], path: str) -> WarmupSample:
        prefix = path + "."
        name = self.string(raw, "name", default="", path=prefix)
        counts: dict[str, int] = {}
        for field_name in ("batch_size", "count"):
            value = self.integer(raw, field_name, default=0, path=prefix)
            if value < 0:
                raise self._fail(
                    prefix + field_name, f"warm-up sample '{name}': must be >= 0, got {value}"
                )
            counts[field_name] = value
        # A map field: { key: "input" value: { ... } } entries; a repeated key replaces the
        # earlier entry, as protobuf's parser does.
        inputs: dict[str, WarmupInput] = {}
        for index, entry in enumerate(self.messages(raw, "inputs", prefix)):
            key = entry.get("key")
            body = entry.get("value", {})
            if not isinstance(key, str) or not key or not isinstance(body, dict):
                raise self._fail(
                    f"{prefix}inputs[{index}]",
                    f"warm-up sample '{name}': must be "
                    '{ key: "<input name>" value: { data_type: … dims: … zero_data: true } }',
                )
            inputs[key] = self._warmup_input(key, body, f'{prefix}inputs["{key}"]', name)
        return WarmupSample(name, counts["batch_size"], tuple(inputs.values()), counts["count"])

    def _warmup_input(
        self, key: str, raw: Mapping[str, Any], path: str, sample: str
    ) -> WarmupInput:
        prefix = path + "."
        data_type = self.string(raw, "data_type", default="TYPE_INVALID", path=prefix)
        if data_type not in TRITON_TO_KSERVE:
            raise self._fail(
                prefix + "data_type",
                f"warm-up sample '{sample}': unknown or missing data type {data_type!r}",
            )
        dims = self.int_list(raw, "dims", path=prefix)
        chosen = [member for member in WARMUP_DATA if member in raw]
        if len(chosen) != 1:
            raise self._fail(
                path,
                f"warm-up sample '{sample}': set exactly one of "
                f"{', '.join(WARMUP_DATA)} (got {', '.join(chosen) or 'none'})",
            )
        (data,) = chosen
        if data == "input_data_file":
            file = self.string(raw, data, default="", path=prefix)
            if not file:
                raise self._fail(prefix + data, f"warm-up sample '{sample}': must name a file")
            return WarmupInput(key, data_type, dims, data, file)
        self.boolean(raw, data, path=prefix)
        return WarmupInput(key, data_type, dims, data)


def load_model_config(path: Path, *, default_name: str) -> ModelConfig:
    """Read and validate ``config.pbtxt``; every failure is a ``ModelConfigError`` (LOAD_FAILED)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(
            f"cannot read the model configuration: {exc}", source=source
        ) from None
    return ModelConfig.from_dict(
        parse_text_format(text, source=source), default_name=default_name, source=source
    )


def kserve_shape(dims: Sequence[int], max_batch_size: int) -> list[int]:
    """The shape Triton's model metadata reports: ``[-1, *dims]`` for batching models."""
    return [-1, *dims] if max_batch_size > 0 else list(dims)
