"""Device specs, cpulists and the `--workers auto` layout (pure)."""

import pytest

from staronnx_cli.devices import Device, parse_device
from staronnx_cli.errors import UserError
from staronnx_cli.kinds import CPU, CUDA
from staronnx_cli.machine import auto_worker_layout, parse_cpulist


def test_parse_cpulist():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("") == []


def test_auto_layout_one_worker_per_numa_node_and_a_core_per_gpu():
    two_sockets = [list(range(16)), list(range(16, 32))]
    assert auto_worker_layout(two_sockets, 0) == "cpu:1x16,cpu:1x16"
    assert auto_worker_layout(two_sockets, 1) == "cuda:0x2,cpu:1x16,cpu:1x15"
    assert auto_worker_layout(two_sockets, 2) == "cuda:0x2,cuda:1x2,cpu:1x15,cpu:1x15"
    assert auto_worker_layout(two_sockets, 1, per_gpu=1) == "cuda:0,cpu:1x16,cpu:1x15"
    assert auto_worker_layout([[0, 1]], 0) == "cpu:1x2"
    assert auto_worker_layout([[0]], 1) == "cuda:0x2"


@pytest.mark.parametrize("spec, device", [("cpu:1", Device(CPU, 1)), ("cuda", Device(CUDA, 0)),
                                          ("CUDA:1", Device(CUDA, 1))])
def test_parse_device(spec, device):
    assert parse_device(spec) == device


def test_more_threads_than_cores_is_refused():
    with pytest.raises(UserError, match="usable cores"):
        parse_device("cpu:4096")


def test_plain_cpu_uses_every_usable_core():
    device = parse_device("cpu")
    assert device.kind == "cpu" and device.number >= 1


@pytest.mark.parametrize("spec", ["gpu7", "cpu:x", "cuda:", "tpu", "cpu:0"])
def test_bad_device_names_the_fix(spec):
    with pytest.raises(UserError, match="cpu"):
        parse_device(spec)


def test_several_workers_share_one_gpu_and_its_memory_node():
    from staronnx_cli.errors import UserError
    from staronnx_cli.runtime.workers import parse_workers

    workers = parse_workers("cuda:0x2,cuda:1,cpu:1x2", [0, 1, 2, 3], cuda_usable=True)
    assert [w.name for w in workers] == ["cuda0.0", "cuda0.1", "cuda1", "cpu0"]
    assert [w.memory_node for w in workers] == ["cuda:0", "cuda:0", "cuda:1", "host"]
    assert {w.kind_key for w in workers[:3]} == {"cuda"} and workers[1].device_id == 0
    for spec, fragment in [("cuda:0,cuda:0", "write cuda:0x2"), ("cuda:0x0", "at least one worker"),
                           ("cuda:0y2", "cuda:IDxW")]:
        with pytest.raises(UserError, match=fragment):
            parse_workers(spec, [0, 1], cuda_usable=True)
    with pytest.raises(UserError, match="no usable CUDA"):
        parse_workers("cuda:0x2", [0, 1], cuda_usable=False)


def test_a_worker_kind_is_one_object_that_reads_and_writes_as_its_name():
    """Files and flags hold "cpu" and "cuda"; code asks the kind object, and a copy (Ray, pickle) is the same one."""
    import copy
    import json
    import pickle

    from staronnx_cli.kinds import key_on_gpu, kind_named, kind_of_worker

    assert CPU == "cpu" and json.dumps([CUDA]) == '["cuda"]' and kind_named("cuda") is CUDA
    assert pickle.loads(pickle.dumps(CUDA)) is CUDA and copy.deepcopy(CPU) is CPU
    assert (CPU.key(4), CUDA.key(4), CPU.memory_node(0), CUDA.memory_node(1)) == ("cpu:4", "cuda", "host", "cuda:1")
    assert CPU.providers() == ["CPUExecutionProvider"] and CPU.pins_threads and not CUDA.pins_threads
    assert CUDA.providers(1, gpu_mem_limit="64") == [("CUDAExecutionProvider", {"device_id": 1, "gpu_mem_limit": "64"}),
                                                     "CPUExecutionProvider"]
    assert (CUDA.worker_name(0, 1), CPU.worker_name(3)) == ("cuda0.1", "cpu3")
    assert not key_on_gpu("cpu:2") and key_on_gpu("cuda") and not key_on_gpu("tpu")
    assert kind_of_worker("cuda0.1") is CUDA and kind_of_worker("cpu1") is CPU
