"""Triton Python-backend model written by staronnx: runs the ONNX model with ONNX Runtime.

Triton's dynamic batcher hands execute() a list of requests: their inputs are concatenated, ONNX Runtime
runs once on the whole batch, and the outputs are split back per request. This file is copied into the
model repository as <model>/1/model.py; it runs in Triton's Python stub, not in staronnx.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        cores = [int(c) for c in params.get("cores", "").split(",") if c]
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cores))  # the same cores as the compared worker
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(params.get("threads", "1"))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(params["onnx_model"], so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        per_request = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs]
                       for r in requests]
        sizes = [arrays[0].shape[0] for arrays in per_request]
        feeds = {name: np.concatenate([arrays[i] for arrays in per_request], axis=0)
                 for i, name in enumerate(self.inputs)}
        results = self.session.run(self.outputs, feeds)
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor(name, value[start:start + n]) for name, value in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def finalize(self):
        self.session = None
