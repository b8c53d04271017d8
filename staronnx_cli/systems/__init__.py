"""What runs a sweep's points: the systems of SYSTEMS behind one contract (contract.py), chosen here from the
settings. Each engine gets only the configuration it uses."""

from __future__ import annotations

from ..errors import UserError
from .contract import BatchSizeSetup, Engine, Executor, Runner
from .target import Target

__all__ = ["SYSTEMS", "BatchSizeSetup", "Engine", "Executor", "Runner", "check_system_engine",
           "check_system_target", "make_engine", "policy_of"]

SYSTEMS = ("staronnx", "native", "ortparallel", "ortstreams", "roundrobin", "triton")
WHOLE_MODEL = ("roundrobin", "native", "ortparallel")  # systems that run one model, whole
ONE_SESSION = ("native", "ortparallel", "ortstreams")  # one ORT session in a plain loop (native.py)


def check_system_engine(system: str, engine: str) -> None:
    """A system that exists, on a clock it runs on (sweep and campaign files alike)."""
    if system not in SYSTEMS:
        raise UserError(f"--system '{system}' is unknown: choose {', '.join(SYSTEMS)}")
    if engine not in ("real", "sim"):
        raise UserError(f"--engine '{engine}' is unknown: choose real or sim")
    if engine == "sim" and system in (*ONE_SESSION, "triton"):
        raise UserError(f"--system {system} runs for real only: drop --engine sim")


def check_system_target(system: str, parts: int, method: str = "") -> None:
    """A system given what it can run: a whole-model system a model, ortstreams a branch plan (sweep and campaign
    files alike; `method`: the plan's split method, "" for a model)."""
    if system in WHOLE_MODEL and parts > 1:
        raise UserError(f"--system {system} runs the whole model: give the model, not a plan")
    if system == "ortstreams" and not method:
        raise UserError("--system ortstreams lays ONNX Runtime's streams out by a branch plan: give the plan of "
                        "'staronnx split MODEL --method branches', not the model")
    if system == "ortstreams" and method != "branches":
        raise UserError(f"--system ortstreams lays ONNX Runtime's streams out by a branch plan: this plan was split "
                        f"with --method {method}; give a plan of 'staronnx split MODEL --method branches'")


def make_engine(s, target: Target, mix=None, memory_limits: dict[str, int] | None = None) -> Engine:
    """The engine of `s.system` on `s.engine`'s clock; every combination that cannot run is one line here."""
    check_system_engine(s.system, s.engine)
    if target.members and s.system in (*WHOLE_MODEL, "ortstreams"):
        raise UserError(f"--system {s.system} serves one model: a mix runs on staronnx or triton")
    check_system_target(s.system, len(target.part_files), target.split_method or "")
    if s.engine == "sim":
        from .sim import SimConfig, SimEngine

        fed = model_inputs(s, mix)
        if s.platform is not None and any(data.source != "random" for data in fed):
            raise UserError("--input-data with --platform: the platform's task times are its own, not learnt on "
                            "inputs; drop --input-data (in a mix: input_data), or --platform to simulate with this "
                            "host's times learnt on that data")
        return SimEngine(SimConfig(s.workers, s.platform, s.model_name or s.target.stem, tuple(s.batch_sizes),
                                   s.seed, s.sim_noise, s.calibrate, s.trust_platform,
                                   tuple(data.cache_key() for data in fed)), target)
    if s.platform is not None:
        raise UserError("--platform describes a machine for the simulator: add --engine sim")
    if s.system in ("native", "ortparallel"):
        from .native import NativeConfig, NativeEngine

        return NativeEngine(NativeConfig(s.workers, s.seed, parallel=s.system == "ortparallel",
                                         variable_batches=s.max_queue_delay_ms is not None, input_data=s.input_data),
                            target.part_files)
    if s.system == "ortstreams":
        from .native import NativeConfig, NativeEngine
        from .streams import plan_streams

        source, stream_of = plan_streams(s.target)
        return NativeEngine(NativeConfig(s.workers, s.seed, stream_of=stream_of, input_data=s.input_data,
                                         variable_batches=s.max_queue_delay_ms is not None), [source])
    if s.system == "triton":
        from .triton import TritonConfig, TritonEngine

        # a mix's arrivals are its models' own
        arrival = next((m.arrival for m in mix.models if m.arrival != "fixed"), s.arrival) if mix else s.arrival
        return TritonEngine(TritonConfig(s.workers, s.output, arrival, s.max_queue_delay_ms, s.triton_port, s.seed,
                                         model_inputs(s, mix)),
                            target.part_files, target)
    from .real import RealConfig, RealEngine

    return RealEngine(RealConfig(s.workers, s.seed, s.calibrate, s.cuda_graphs, s.max_queue_delay_ms is not None,
                                 memory_limits, policy_of(s), model_inputs(s, mix)),
                      target.part_files, target.model_sha256, target.plan_sha256, target)


def model_inputs(s, mix) -> tuple:
    """What each model is fed: a mix's models their own input_data, one model --input-data."""
    return tuple(m.input_data for m in mix.models) if mix else (s.input_data,)


def policy_of(s) -> str:
    """The policy a system runs: roundrobin is the whole model on the first free worker (central FIFO)."""
    return {"roundrobin": "eager", "native": "fifo", "ortparallel": "fifo", "ortstreams": "fifo",
            "triton": "triton-dynamic-batcher"}.get(s.system, s.policy)
