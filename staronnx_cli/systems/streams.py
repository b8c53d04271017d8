"""`--system ortstreams`: ONNX Runtime's own logic streams, laid out by a branch plan.

ONNX Runtime can run one session's nodes on several streams (CUDA streams on a GPU), given a partition file
(`session.node_partition_config_file`: {"type": "DeviceBasedPartitioner", "streams": [[node, ...], ...],
"devices": [...]}) that names the nodes of its *optimized* graph. Where the file does not exist, ONNX Runtime
writes its default partition there: one stream per device. The plan's groups (its chain cover, merged to
`--streams` groups) become the streams: each optimized node goes to the group of the longest original node
name it starts with (fused nodes keep their first node's name: `conv1.relu` becomes `conv1.relu_nchwc`), and
to its predecessor's where none matches. Measured on CPU (ONNX Runtime 1.31.1, googlenet): accepted, the same
outputs, no faster (28.1 vs 28.4 ms): the CPU provider runs its streams one at a time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from .. import modelio
from ..errors import UserError, ort_reason
from ..split.plan import read_plan

PARTITION_KEY = "session.node_partition_config_file"
CPU_DEVICE = "0"  # ONNX Runtime's device type of a stream on the host (OrtDevice::CPU)


def plan_streams(plan_dir: Path) -> tuple[Path, dict[str, int]]:
    """A branch plan's source model and each of its nodes' group (its stream); that the plan is one of branches is
    check_system_target's to say."""
    plan = read_plan(plan_dir)
    source = Path(plan.source_model)
    if not source.exists():
        raise UserError(f"--system ortstreams runs the plan's source model, {source}, which is not there: split the "
                        "model again where it is")
    groups = plan.dag.get("groups") or [0] * len(plan.parts)
    stream_of = {}
    for i, part in enumerate(plan.parts):  # a part's file holds its nodes, named as in the model
        for node in modelio.load_model(plan_dir / part.file, with_weights=False).graph.node:
            stream_of[node.name] = int(groups[i])
    return source, stream_of


def partition_file(model: Path, options: Callable[[], ort.SessionOptions], providers: list,
                   stream_of: dict[str, int], folder: Path | None = None) -> tuple[Path, list[int]]:
    """ONNX Runtime's partition of `model` with the streams of the accelerator's (or, on CPU, the host's) nodes
    split by `stream_of`; the file and each stream's count of nodes."""
    folder = Path(tempfile.mkdtemp(prefix="staronnx-streams-")) if folder is None else folder
    default = folder / "ort_partition_default.json"
    default.unlink(missing_ok=True)
    so = options()
    so.add_session_config_entry(PARTITION_KEY, str(default))
    try:
        ort.InferenceSession(str(model), so, providers=providers)
        layout = json.loads(default.read_text())
    except Exception as exc:  # noqa: BLE001 - ORT's refusal, or no file written: one line
        raise UserError(f"--system ortstreams: ONNX Runtime wrote no partition of {model.name} "
                        f"({ort_reason(exc)})") from None
    on_gpu = any(d != CPU_DEVICE for d in layout["devices"])
    streams, devices = [], []
    for nodes, device in zip(layout["streams"], layout["devices"]):
        if on_gpu and device == CPU_DEVICE:  # the host's few nodes (shapes) stay as they are
            streams.append(nodes)
            devices.append(device)
            continue
        split = _by_group(nodes, stream_of)
        streams += split
        devices += [device] * len(split)
    path = folder / "ort_partition.json"
    path.write_text(json.dumps({"type": layout["type"], "streams": streams, "devices": devices}, indent=1) + "\n")
    return path, [len(s) for s in streams]


def _by_group(nodes: list[str], stream_of: dict[str, int]) -> list[list[str]]:
    """The nodes (in ONNX Runtime's order) split by group, each group's in that order; empty groups dropped."""
    names = sorted(stream_of, key=len, reverse=True)
    out: dict[int, list[str]] = {}
    last = 0
    for node in nodes:
        group = stream_of.get(node)
        if group is None:
            group = next((stream_of[n] for n in names if node.startswith(n)), last)
        out.setdefault(group, []).append(node)
        last = group
    return [out[g] for g in sorted(out)]
