"""Streams the words of WORDS (at most ``max_tokens`` of them, from ``sampling_parameters``), one
response per word when ``stream`` is true, else all in one response; prepends the prompt unless
``exclude_input_in_output`` or streaming, as Triton's vLLM backend does."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

WORDS = [" one", " two", " three", " four", " five", " six", " seven", " eight"]


def _scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else tensor.as_numpy().reshape(-1)[0]


def _text(value):
    return pb_utils.Tensor("text_output", np.array([value.encode("utf-8")], dtype=np.object_))


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            prompt = _scalar(request, "text_input", b"").decode("utf-8")
            stream = bool(_scalar(request, "stream", False))
            exclude = bool(_scalar(request, "exclude_input_in_output", False))
            params = json.loads(_scalar(request, "sampling_parameters", b"{}") or b"{}")
            count = int(params.get("max_tokens", 16))
            if count < 1:
                error = pb_utils.TritonError("max_tokens must be at least 1")
                sender.send(
                    pb_utils.InferenceResponse(error=error),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
                continue
            words = WORDS[:count]
            if stream:
                for word in words:
                    sender.send(pb_utils.InferenceResponse([_text(word)]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            else:
                text = ("" if exclude else prompt) + "".join(words)
                sender.send(
                    pb_utils.InferenceResponse([_text(text)]),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
        return None
