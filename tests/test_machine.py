"""Device specs, cpulists and the `--workers auto` layout (pure)."""

import pytest

from staronnx_cli.devices import Device, parse_device
from staronnx_cli.errors import UserError
from staronnx_cli.machine import auto_worker_layout, parse_cpulist


def test_parse_cpulist():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("") == []


def test_auto_layout_one_worker_per_numa_node_and_a_core_per_gpu():
    two_sockets = [list(range(16)), list(range(16, 32))]
    assert auto_worker_layout(two_sockets, 0) == "cpu:1x16,cpu:1x16"
    assert auto_worker_layout(two_sockets, 1) == "cuda:0,cpu:1x16,cpu:1x15"
    assert auto_worker_layout(two_sockets, 2) == "cuda:0,cuda:1,cpu:1x15,cpu:1x15"
    assert auto_worker_layout([[0, 1]], 0) == "cpu:1x2"
    assert auto_worker_layout([[0]], 1) == "cuda:0"


@pytest.mark.parametrize("spec, device", [("cpu:1", Device("cpu", 1)), ("cuda", Device("cuda", 0)),
                                          ("CUDA:1", Device("cuda", 1))])
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
