"""Control-flow nodes (Loop, Scan, If) timed alone, unprofiled. ORT's profiler times every node run inside their
bodies (a Loop of 30 iterations: hundreds of events per run), and that cost lands in the control-flow node's own
time: a Loop measured 803 us profiled where the whole model ran in 158 us, so split moved 0.85 of the time instead
of 0.41. Each such node is cut out into a model of its own (its inputs, and the outer values its body reads, fed
from a real run of the whole model) and timed without the profiler; its rows take that time."""

from __future__ import annotations

import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

CONTROL_FLOW = ("Loop", "Scan", "If")


def _bodies(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs = []
    for a in node.attribute:
        graphs += [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
    return graphs


def outer_reads(node: onnx.NodeProto) -> list[str]:
    """The values of the enclosing graph a node reads: its inputs, and the names its bodies use that they neither
    make nor take (ONNX's implicit inputs), through nested bodies."""
    read = [i for i in node.input if i]
    for body in _bodies(node):
        own = {i.name for i in body.input} | {i.name for i in body.initializer}
        for inner in body.node:
            own |= {o for o in inner.output if o}
        for inner in body.node:
            read += [name for name in outer_reads(inner) if name not in own]
    return list(dict.fromkeys(read))


def fed_values(model: onnx.ModelProto, node: onnx.NodeProto) -> list[str]:
    """What a model of this one node takes as inputs: every value it reads but the weights."""
    weights = {i.name for i in model.graph.initializer}
    return [n for n in outer_reads(node) if n not in weights]


def alone(model: onnx.ModelProto, node: onnx.NodeProto, values: dict) -> onnx.ModelProto:
    """A model of this one node: the weights it reads kept, every other value it reads an input typed as the
    value a run of the whole model gave it."""
    weights = {i.name: i for i in model.graph.initializer}
    reads = outer_reads(node)
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(values[n].dtype), values[n].shape)
              for n in reads if n not in weights]
    graph = helper.make_graph([node], f"{node.name}_alone", inputs,
                              [onnx.ValueInfoProto(name=o) for o in node.output if o],
                              [weights[n] for n in reads if n in weights])
    single = helper.make_model(graph, opset_imports=model.opset_import)
    single.ir_version = model.ir_version
    return single


def values_read(model: onnx.ModelProto, nodes: list[onnx.NodeProto], feeds: dict,
                options: ort.SessionOptions) -> dict:
    """What these nodes read, from one run of the whole model with those values as extra outputs."""
    wanted = list(dict.fromkeys(n for node in nodes for n in fed_values(model, node)))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in known)
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    return {n: np.asarray(feeds[n] if n in feeds else values[n]) for n in wanted}


def timed_alone(model: onnx.ModelProto, node: onnx.NodeProto, values: dict, options: ort.SessionOptions,
                runs: int, warmup: int) -> list[float]:
    """The node's run times (us) alone, unprofiled, on the values a run of the whole model gave it."""
    inputs = {n: values[n] for n in fed_values(model, node)}
    session = ort.InferenceSession(alone(model, node, inputs).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        session.run(None, inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, inputs)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def correct_rows(rows: list[dict], model: onnx.ModelProto, feeds: dict, options: ort.SessionOptions, runs: int,
                 warmup: int) -> list[str]:
    """Control-flow nodes of a CPU profile take their time alone where it is the lower (alone, a run also pays
    session.run's own microseconds: a body-less If took 6 us alone, 9.5 profiled); the notes say each change."""
    nodes = {n.name: n for n in model.graph.node}
    chosen = [(row, nodes[row["node"]]) for row in rows if row["node"] in nodes and row["how"] == "exact"
              and nodes[row["node"]].op_type in CONTROL_FLOW]
    if not chosen:
        return []
    try:
        values = values_read(model, [node for _, node in chosen], feeds, options)
    except Exception as exc:  # noqa: BLE001 - the profiled times stay, said
        return [f"control-flow nodes could not be timed alone ({type(exc).__name__}): their profiled times, which "
                "ORT's profiler inflates with every node run in their bodies, are kept"]
    notes = []
    for row, node in chosen:
        try:
            times = timed_alone(model, node, values, options, max(runs, 20), max(warmup, 10))  # first runs: cold
        except Exception as exc:  # noqa: BLE001 - the profiled time stays, said
            notes.append(f"{node.op_type} '{node.name}' could not be timed alone ({type(exc).__name__}): its "
                         "profiled time, which ORT's profiler inflates with every node run in its body, is kept")
            continue
        profiled = row["mean_us"]
        if statistics.fmean(times) >= profiled:
            continue
        row.update({"mean_us": round(statistics.fmean(times), 3), "median_us": round(statistics.median(times), 3),
                    "std_us": round(statistics.stdev(times), 3) if len(times) > 1 else 0.0, "how": "alone"})
        notes.append(f"{node.op_type} '{node.name}': {profiled:,.1f} us profiled (ORT's profiler times each node "
                     f"run in its body), {row['mean_us']:,.1f} us timed alone without it: that time kept")
    return notes


def has_control_flow(model: onnx.ModelProto) -> bool:
    return any(n.op_type in CONTROL_FLOW for n in model.graph.node)
