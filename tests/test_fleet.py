"""`staronnx fleet` on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster, each node with the
custom resource of its machine kind): jobs on nodes of their kind, one real sweep at a time per node, every row
gathered once, a rerun doing nothing, a node removed mid-campaign."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
SWEEP = 'workers = "cpu:1x1"\nbatch = "1"\nwarmup = 1\n'


def campaign_text(sweeps: str) -> str:
    return ('name = "test"\n[kinds.small]\nresources = { small = 1 }\n[kinds.large]\nresources = { large = 1 }\n\n'
            + sweeps)


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    made.add_node(num_cpus=1, resources={"small": 1})
    made.add_node(num_cpus=1, resources={"small": 1})
    made.add_node(num_cpus=1, resources={"large": 1})
    made.wait_for_nodes()
    yield made
    ray.shutdown()
    made.shutdown()


def fleet(campaign: Path, out: Path, address: str, wait: bool = True):
    command = [sys.executable, "-m", "staronnx_cli", "fleet", str(campaign), "-o", str(out), "--ray-address", address]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    return proc.communicate(timeout=600) + (proc.returncode,) if wait else proc


def nodes_with(cluster, resource: str) -> set[str]:
    import ray

    ray.init(address=cluster.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    return {n["NodeID"] for n in ray.nodes() if resource in (n.get("Resources") or {})}


def test_a_campaign_runs_each_job_on_its_kind_one_real_sweep_per_node_and_a_rerun_does_nothing(cluster, tmp_path):
    platform = tmp_path / "machine.toml"
    platform.write_text('name = "m"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n[[times]]\npart = 0\n'
                        'kind = "cpu:1"\nbatch = 1\nmean_ms = 2.0\nstd_ms = 0.1\n')
    campaign = tmp_path / "campaign.toml"
    (tmp_path / "data").mkdir()
    import numpy as np

    np.savez(tmp_path / "data" / "tokens.npz", tokens=np.zeros((2, 16, 32), np.float32))  # sent to the node
    campaign.write_text(campaign_text(
        f'[[sweep]]\nname = "cnn"\ntarget = "tiny_cnn"\nkinds = ["small", "large"]\nrate = "40,80"\nbatches = 6\n'
        f'{SWEEP}\n[[sweep]]\nname = "transformer"\ntarget = "tiny_transformer"\nkinds = ["small"]\nrate = "40"\n'
        f'batches = 6\ninput_data = "data/tokens.npz"\n{SWEEP}\n[[sweep]]\nname = "what_if"\ntarget = "tiny_cnn"\n'
        f'kinds = ["large"]\nengine = "sim"\n'
        f'platform = "machine.toml"\nrate = "100,200"\nbatches = 20\nbatch = "1"\nwarmup = 1\n'))
    out = tmp_path / "fleet"
    stdout, stderr, code = fleet(campaign, out, cluster.address)
    assert code == 0, stdout + stderr
    state = json.loads((out / "fleet.json").read_text())
    assert {k: v["status"] for k, v in state["jobs"].items()} == {
        "cnn/small": "done", "cnn/large": "done", "transformer/small": "done", "what_if/large": "done"}
    spans = []
    for key, rates in (("cnn/small", 2), ("cnn/large", 2), ("transformer/small", 1), ("what_if/large", 2)):
        points = pd.read_csv(out / key / "points.csv")
        assert len(points) == rates and not points.duplicated(["batch_size", "rate_qps"]).any(), key
        batches = pd.read_csv(out / key / "batches.csv")
        assert len(batches) > 0 and set(batches.rate_qps) == set(points.rate_qps)
        where = json.loads((out / key / "run.json").read_text())["fleet"]
        kind = key.split("/")[1]
        assert where["kind"] == kind and where["ray_node_id"] in nodes_with(cluster, kind), key
        assert json.loads((out / key / "run.json").read_text())["input_data"].startswith(
            "tokens.npz (sha256 " if key.startswith("transformer") else "random"), key
        if not key.startswith("what_if"):
            spans.append((where["ray_node_id"], where["started"], where["ended"]))
    for node, start, end in spans:  # never two real sweeps at once on one node
        assert not any(n == node and s < end and start < e for n, s, e in spans if (s, e) != (start, end))
    assert "answer: tiny_cnn:" in stdout
    assert "small serves the most per node, at least 40 q/s (transformer; never congested in its grid" in stdout
    local = tmp_path / "local_what_if"  # the same simulated sweep run here: the same rows, byte for byte
    made = subprocess.run([sys.executable, "-m", "staronnx_cli", "sweep", "tiny_cnn", "--engine", "sim", "--platform",
                           str(platform), "--batch", "1", "--rate", "100,200", "--batches",
                           "20", "--warmup", "1", "-o", str(local)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert (local / "points.csv").read_bytes() == (out / "what_if" / "large" / "points.csv").read_bytes()
    assert (local / "batches.csv").read_bytes() == (out / "what_if" / "large" / "batches.csv").read_bytes()
    drawn = subprocess.run([sys.executable, "-m", "staronnx_cli", "plot", str(out)], capture_output=True, text=True)
    assert drawn.returncode == 0 and (out / "fleet.png").stat().st_size > 0, drawn.stderr
    before = {p: p.read_bytes() for p in out.rglob("*.csv")}
    again, stderr, code = fleet(campaign, out, cluster.address)
    assert code == 0 and "nothing to run" in again, again + stderr
    assert {p: p.read_bytes() for p in out.rglob("*.csv")} == before
    report = tmp_path / "report.md"
    made = subprocess.run([sys.executable, "-m", "staronnx_cli", "report", str(out), "-o", str(report)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "serves the most per node" in report.read_text()


def long_campaign(cluster, tmp_path: Path, rates: str, measured: int):
    """A campaign of one sweep on kind small, started; returned once `measured` of its points are written."""
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_text(f'[[sweep]]\nname = "long"\ntarget = "tiny_cnn"\nkinds = ["small"]\n'
                                      f'rate = "{rates}"\nbatches = 12\n{SWEEP}'))
    out = tmp_path / "fleet"
    proc = fleet(campaign, out, cluster.address, wait=False)
    points = out / "long" / "small" / "points.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not points.exists() or len(points.read_text().splitlines()) <= measured):
        time.sleep(0.1)
    return campaign, out, proc, points


def test_a_node_removed_mid_campaign_loses_no_point_and_counts_none_twice(cluster, tmp_path):
    campaign, out, proc, points = long_campaign(cluster, tmp_path, "20,25,30,35,40,45,50,55", 2)
    running_on = json.loads((out / "fleet.json").read_text())["jobs"]["long/small"]["running_on"]
    victim = next(n for n in cluster.list_all_nodes() if n.node_id == running_on)
    cluster.remove_node(victim)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    frame = pd.read_csv(points)
    assert len(frame) == 8 and not frame.duplicated(["batch_size", "rate_qps"]).any()  # each point exactly once
    assert points.read_text().endswith("\n")  # no torn row
    job = json.loads((out / "fleet.json").read_text())["jobs"]["long/small"]
    assert job["status"] == "done" and job["attempts"] >= 1 and "resumed on another node" in stdout
    assert json.loads((out / "long" / "small" / "run.json").read_text())["fleet"]["ray_node_id"] != running_on
    report = tmp_path / "report.md"
    assert subprocess.run([sys.executable, "-m", "staronnx_cli", "report", str(out), "-o", str(report)]).returncode == 0
    assert "long on small ran 2 times: an attempt ended" in report.read_text()


def test_ctrl_c_keeps_what_was_measured_and_a_rerun_finishes_it(cluster, tmp_path):
    import signal

    campaign, out, proc, points = long_campaign(cluster, tmp_path, "20,25,30,35,40,45", 1)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - started < 15, (proc.returncode, stderr)
    assert len([line for line in stderr.splitlines() if line.strip()]) == 1 and "interrupted" in stderr
    kept = pd.read_csv(points)
    assert 1 <= len(kept) < 6 and points.read_text().endswith("\n")
    time.sleep(2)  # its job was ended with the driver: nothing more arrives
    assert len(pd.read_csv(points)) == len(kept)
    stdout, stderr, code = fleet(campaign, out, cluster.address)
    assert code == 0, stdout + stderr
    frame = pd.read_csv(points)
    assert len(frame) == 6 and not frame.duplicated(["batch_size", "rate_qps"]).any()


def test_a_kind_no_node_has_and_an_unreachable_address_are_one_line(cluster, tmp_path):
    campaign = tmp_path / "c.toml"
    campaign.write_text('[kinds.gpu]\nresources = { h100 = 1 }\n\n[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["gpu"]\n')
    stdout, stderr, code = fleet(campaign, tmp_path / "out", cluster.address)
    assert code == 2 and "no node of the cluster has the resources of kind gpu" in stderr, stderr
    assert "ray start --resources" in stderr and not (tmp_path / "out" / "tiny_cnn").exists()
    started = time.monotonic()
    stdout, stderr, code = fleet(campaign, tmp_path / "out2", "127.0.0.1:9")
    assert code == 2 and "--ray-address 127.0.0.1:9" in stderr and time.monotonic() - started < 20, stderr


def test_a_sweep_that_fails_on_its_node_says_why_each_time(cluster, tmp_path):
    """A sweep's own error on its node (here: more cores than the node's machine has) read as a lost node, its reason
    Ray's task name in terminal colours. It is tried on the kind's other nodes (the node may be the cause: a full
    disk, a broken driver), each time with its own reason."""
    campaign = tmp_path / "c.toml"
    campaign.write_text(campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nworkers = "cpu:4096x1"\n'
                                      'rate = "100"\nbatch = "1"\n'))
    stdout, stderr, code = fleet(campaign, tmp_path / "out", cluster.address)
    job = json.loads((tmp_path / "out" / "fleet.json").read_text())["jobs"]["tiny_cnn/small"]
    assert code == 3 and job["status"] == "failed" and job["attempts"] == 3, stdout + stderr
    assert job["why"].startswith("--workers cpu:4096x1: asks for 4096 more cores") and "\x1b" not in job["why"]
    assert "tiny_cnn/small: failed (--workers cpu:4096x1: asks for" in stdout and "lost" not in stdout
    assert "given up after 3 attempt(s): --workers cpu:4096x1" in stdout


@pytest.mark.parametrize("text, fragment", [
    ("name = 'x'\n", "no [kinds.NAME]"),
    (campaign_text(""), "no [[sweep]]"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["gpu"]\n'), "names kind 'gpu'"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\n'), "needs kinds"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nengine = "fast"\n'), "engine = 'fast'"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nbatchez = 3\n'), "unknown key 'batchez'"),
    (campaign_text('[[sweep]]\nname = "a b"\ntarget = "tiny_cnn"\nkinds = ["small"]\n'), "name 'a b'"),
    (campaign_text('[[sweep]]\nname = ".."\ntarget = "tiny_cnn"\nkinds = ["small"]\n'), "name '..'"),  # above -o
    ("[[kinds]]\nresources = { a = 1 }\n", "as [kinds.NAME] tables"),
    ('[kinds.small]\nresources = { CPU = 1 }\n[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n',
     "resource CPU is one of Ray's own"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nbatch = "0,2"\n'), "batch = '0,2'"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nplatform = "p.toml"\nworkers = "cpu:1x1"\n'
                   'engine = "sim"\n'), "workers and platform"),
    (campaign_text('[[sweep]]\ntarget = "no_such_model"\nkinds = ["small"]\n'), "neither a file"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nrate = "0"\n'), "rate 0: every rate must be"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nworkers = "gpu:7"\n'),
     "workers 'gpu:7' is not a worker"),  # a node refused these, and the job was retried as if its node were lost
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\npolicy = "dmdx"\n'), "policy 'dmdx' is unknown"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nsystem = "trit"\n'), "system 'trit' is unknown"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nsystem = "triton"\nengine = "sim"\n'),
     "system triton runs for real only: drop engine sim"),  # it reached Ray, and each node refused it
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nsystem = "native"\npolicy = "eager"\n'),
     "policy = 'eager' applies to system staronnx"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nsystem = "native"\npolicy = "dmda"\n'),
     "policy = 'dmda' applies to system staronnx"),
    # what the target allows, refused by the node once it held it: ortstreams given a model, a static policy with
    # more kinds than parts
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nsystem = "ortstreams"\n'),
     "[[sweep]] tiny_cnn: system ortstreams lays ONNX Runtime's streams out by a branch plan"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\npolicy = "static:cpu,cpu"\n'),
     "policy static:cpu,cpu names 2 kinds for 1 part(s)"),
    # the sweep's own limits, each refused by the node after the job reached it
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nbatches = 1\n'), "batches 1: at least 2"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nrate = "1e-9"\nbatch = "1"\n'),
     "more than max-hours 24"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\nbatches = 99999999999\n'),
     "at most 1,000,000 batches"),
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n[[sweep]]\ntarget = "tiny_cnn"\n'
                   'kinds = ["large"]\n'), "two [[sweep]] are named 'tiny_cnn'"),
    # a typo'd [[sweeps]] beside a good [[sweep]] was dropped without a word; a kind's extra key; a name with a
    # newline ($ matched before it)
    (campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n[[sweeps]]\ntarget = "tiny_cnn"\n'
                   'kinds = ["large"]\n'), "unknown key 'sweeps' at the top"),
    ('[kinds.small]\nresources = { small = 1 }\ncount = 4\n[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n',
     "[kinds.small]: unknown key 'count'"),
    (campaign_text('[[sweep]]\nname = "abc\\n"\ntarget = "tiny_cnn"\nkinds = ["small"]\n'), "name 'abc\\n'"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\nrate = "auto,x"\n'),
     "rate = 'auto,x': auto, auto,250, START:STOP:STEP or a list"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\nshape = 5\n'),
     "shape = 5 must be INPUT:SIZES or a list of them"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\nshape = "image:3,32"\n'),
     "[[sweep]] a: --shape image:3,32: input 'image' has 3 dimension(s) after the batch"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\ninput_data = 3\n'),
     "(a): input_data = 3 must be"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\ninput_data = "no.npz"\n'),
     "[[sweep]] a: input_data file"),
    (campaign_text('[[sweep]]\nname = "a"\ntarget = "tiny_cnn"\nkinds = ["small"]\ninput_data = "ids.npz"\n'),
     "[[sweep]] a: input data"),
])
def test_bad_campaigns_are_one_line_before_ray_starts(cli, tmp_path, text, fragment):
    import numpy as np

    np.savez(tmp_path / "ids.npz", ids=np.zeros((2, 4), np.int64))  # tiny_cnn has no input 'ids'
    campaign = tmp_path / "c.toml"
    campaign.write_text(text)
    assert_one_line_error(cli("fleet", campaign, "-o", tmp_path / "out", "--ray-address", "127.0.0.1:9"), fragment)
    assert not (tmp_path / "out" / "ray.log").exists()


def test_a_plan_given_to_a_whole_model_system_is_one_line_before_ray_starts(cli, tiny_cnn_path, tmp_path):
    """Each node refused it after the job reached it, and the job was retried as if its node were lost."""
    assert cli("split", tiny_cnn_path, "--offload", "0.3", "-o", tmp_path / "plan").exit_code == 0
    parts = len(json.loads((tmp_path / "plan" / "plan.json").read_text())["parts"])
    campaign = tmp_path / "c.toml"
    for sweeps, fragment in (('system = "native"', "system native runs the whole model: give the model, not a plan"),
                             ('system = "ortstreams"', "this plan was split with --method metis"),
                             (f'policy = "static:{",".join(["cpu"] * (parts + 1))}"',
                              f"names {parts + 1} kinds for {parts} part(s)")):
        # the same target twice: the second [[sweep]] is checked though its files are shipped once
        campaign.write_text(campaign_text(f'[[sweep]]\nname = "a"\ntarget = "plan"\nkinds = ["small"]\n'
                                          f'[[sweep]]\nname = "b"\ntarget = "plan"\nkinds = ["small"]\n{sweeps}\n'))
        assert_one_line_error(cli("fleet", campaign, "-o", tmp_path / "out", "--ray-address", "127.0.0.1:9"),
                              "campaign: [[sweep]] b: ", fragment)
        assert not (tmp_path / "out" / "ray.log").exists()


def test_a_campaign_never_writes_into_a_run_a_plan_or_an_advice(cli, tiny_cnn_path, tmp_path):
    """fleet.json written into a run directory before Ray answered hid the run from plot and report."""
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "5",
               "-o", run).exit_code == 0
    campaign = tmp_path / "c.toml"
    campaign.write_text(campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n'))
    assert_one_line_error(cli("fleet", campaign, "-o", run, "--ray-address", "127.0.0.1:9"),
                          "is a sweep's run directory", "choose another -o")
    assert not (run / "fleet.json").exists() and cli("plot", run, "--table").exit_code == 0


def test_without_ray_fleet_says_how_to_get_it(cli, tmp_path, monkeypatch):
    import importlib.util

    campaign = tmp_path / "c.toml"
    campaign.write_text(campaign_text('[[sweep]]\ntarget = "tiny_cnn"\nkinds = ["small"]\n'))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert_one_line_error(cli("fleet", campaign, "-o", tmp_path / "out"), "fleet needs Ray", "pip install")


def test_advise_on_a_platform_with_ray_resources_confirms_on_a_node_of_that_kind(cluster, tmp_path):
    platform = tmp_path / "machine.toml"
    platform.write_text('name = "small node"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n[ray]\n'
                        'resources = { large = 1 }\n[[times]]\npart = 0\nkind = "cpu:1"\nbatch = 1\nmean_ms = 0.5\n'
                        'std_ms = 0.05\n')
    out = tmp_path / "advice"
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", "advise", "tiny_cnn", "--rate", "50", "--batch", "1",
                           "--platform", str(platform), "--trust-platform", "--ray", "--ray-address", cluster.address,
                           "--confirm-batches", "5", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (out / "advice.md").read_text()
    assert "ms measured" in text and "confirmed for real on a node of the cluster" in text
    runs = list((out / "real").glob("*/platform/run.json"))
    assert runs and all(json.loads(r.read_text())["fleet"]["ray_node_id"] in nodes_with(cluster, "large")
                        for r in runs)
    # --force measures again (a fleet would continue the earlier confirmations, or refuse their changed settings)
    again = subprocess.run([sys.executable, "-m", "staronnx_cli", "advise", "tiny_cnn", "--rate", "50", "--batch", "1",
                            "--platform", str(platform), "--trust-platform", "--ray", "--ray-address", cluster.address,
                            "--confirm-batches", "6", "-o", str(out), "--force"], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ms measured" in (out / "advice.md").read_text()
    runs = list((out / "real").glob("*/platform/run.json"))
    assert runs and all(json.loads(r.read_text())["batches"] == 6 for r in runs)


def test_the_campaigns_eta_sums_the_jobs_scheduled_arrivals_over_those_running_at_once():
    from staronnx_cli.fleet.run import FleetProgress

    p = FleetProgress(jobs=4, done=1, running=3)
    p.estimate()
    assert p.seconds_left is None  # nothing planned yet: no guess
    p.scheduled = {"a/x": (10.0, 30.0), "b/x": (5.0, 20.0)}  # 35 s left; a job averages 25 s; one still queued
    p.estimate()
    assert p.seconds_left == (20.0 + 15.0 + 25.0) / 2


def test_a_missing_grpcio_is_said_as_such_not_as_no_cluster(monkeypatch, tmp_path):
    """Ray 2.60 does not require grpcio, which the address probe needs: with the [ray] extra alone, a running
    cluster was reported as 'no Ray cluster answers there (No module named 'grpc')'."""
    import sys

    from staronnx_cli.rayproc import init_ray

    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc raises ImportError
    said = init_ray("127.0.0.1:6379", "--ray-address", str(tmp_path / "ray.log"))
    assert said == ("--ray-address 127.0.0.1:6379: Python's grpc module is not installed: pip install "
                    "'staronnx[ray]' (Ray and grpcio)")


def test_a_campaign_sends_the_model_with_its_shape_and_names_its_results_by_it(tmp_path):
    """sweep's --shape in a campaign (shape = [...]): the copy with those sizes is made on the driver and sent, so
    the node sees a model whose only free dimension is the batch; the results' model name says the shape."""
    import onnx
    from onnx import helper

    from staronnx_cli.fleet.campaign import read_campaign
    from staronnx_cli.fleet.run import _shipments

    x, y = (helper.make_tensor_value_info(n, 1, ["batch", "seq"]) for n in ("x", "y"))
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    campaign = tmp_path / "c.toml"
    campaign.write_text(campaign_text('[[sweep]]\ntarget = "m.onnx"\nkinds = ["small"]\nshape = "x:16"\n'))
    read = read_campaign(campaign)
    (shipped,) = _shipments(read).values()
    sent = onnx.load_from_string(shipped["target.onnx"])
    assert [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in sent.graph.input] == \
        [["batch", 16]]
    assert read.jobs[0].sweep.settings().model_name == "m.x-16"
