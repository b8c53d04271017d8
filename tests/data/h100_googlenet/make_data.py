"""How the files beside this script were made (run once; kept for provenance, not run by the tests).

Source: a recording on an NVIDIA H100 (driver 580, CUDA 13.0), staronnx zoo googlenet (seed 0), ONNX Runtime
1.31.1 with the CUDA execution provider at optimisation level basic, batch 1 and 32: ORT's profile of 5
warm-up + 10 runs, and CUPTI's activity of the same 10 runs (kernels, memcpy, memset, runtime and driver API
calls) written by PyTorch's profiler in Chrome trace format, whose absolute time is baseTimeNanoseconds +
ts * 1000 on the same wall clock as ORT's profiling start (checked there: offset under 1 us).

Kept here, small: ORT's events that `profile` reads (kernels and runs, only the args it uses), gzipped, and
the CUPTI records in staronnx's own recording format (gpu_times.write_recording), plus the profiling start.

    python tests/data/h100_googlenet/make_data.py /path/to/h100_googlenet_ort_cupti.tgz
"""

import gzip
import json
import sys
import tarfile
from pathlib import Path

from staronnx_cli.profile.gpu_times import ApiCall, GpuActivity, GpuRecording, write_recording

HERE = Path(__file__).parent
ARGS_KEPT = ("op_name", "provider", "output_size")
KINDS = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset"}


def member(tar: tarfile.TarFile, suffix: str) -> bytes:
    name = next(m.name for m in tar.getmembers() if m.name.endswith(suffix))
    return tar.extractfile(name).read()


def trimmed_ort(events: list[dict]) -> list[dict]:
    kept = []
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run" or \
                e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            args = {k: v for k, v in e.get("args", {}).items() if k in ARGS_KEPT}
            kept.append({"cat": e["cat"], "name": e["name"], "ts": e["ts"], "dur": e["dur"], "args": args})
    return kept


def recording(chrome: dict) -> GpuRecording:
    base = chrome["baseTimeNanoseconds"]
    calls, activities = [], []
    for e in chrome["traceEvents"]:
        start = base + round(e.get("ts", 0) * 1000)
        if e.get("cat") in ("cuda_runtime", "cuda_driver"):
            calls.append(ApiCall(e["args"]["correlation"], start, e["name"]))
        elif e.get("cat") in KINDS:
            activities.append(GpuActivity(KINDS[e["cat"]], e["args"]["correlation"], start,
                                          start + round(e["dur"] * 1000), e["name"], e["args"].get("bytes", 0)))
    return GpuRecording(calls, activities, 0, f"PyTorch profiler (kineto), CUPTI {chrome.get('cupti_version')}")


def main(tgz: str) -> None:
    meta = {}
    with tarfile.open(tgz) as tar:
        for batch in (1, 32):
            info = json.loads(member(tar, f"meta_b{batch}.json"))
            ort_events = json.loads(member(tar, info["ort_profile"]))
            (HERE / f"ort_b{batch}.json.gz").write_bytes(
                gzip.compress(json.dumps(trimmed_ort(ort_events), separators=(",", ":")).encode(), mtime=0))
            chrome = json.loads(member(tar, f"cupti_b{batch}.json"))
            write_recording(recording(chrome), HERE / f"cupti_b{batch}.json.gz")
            meta[str(batch)] = {"profiling_start_ns": info["ort_profiling_start_time_ns"],
                                "warmup_runs": info["warmup_runs_in_ort_profile"], "runs": info["runs_in_both"],
                                "gpu": info["gpu"], "ort": info["ort"], "model": info["model"]}
    (HERE / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
