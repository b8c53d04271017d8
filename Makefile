# The two commands of README.md: `make run` and `make test`. Everything installs itself into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FULL_STAMP := $(VENV)/.installed-full-stamp
MODEL ?= googlenet
RESULTS ?= results/$(MODEL)
# STARONNX_NO_VENV=1: the GPU targets run with the current python3 as it is (an offline GPU machine prepared by
# its install kit: the project and its packages already on PYTHONPATH); no venv is made, nothing is installed
ifeq ($(STARONNX_NO_VENV),1)
GPU_PY := $(PYTHON)
GPU_DEPS :=
else
GPU_PY := $(BIN)/python
GPU_DEPS := $(STAMP)
endif

.PHONY: run test lint faults bench opara bench-gpu compare compare-mix paper-sim gpu-profile-check gpu-check clean install

# What staronnx itself needs (make run, the benchmarks); the tests and `make compare` add pytest and a real
# Triton server and Ray (the [dev,triton,ray] extras, about 0.7 GB more).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(FULL_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,triton,ray]'
	touch $(FULL_STAMP)

install: $(STAMP)

## run: the main job on the default model: build, profile, split 10 % off, sweep the whole and the split model, plot,
## then advise what to run at 20 and 40 q/s
run: $(STAMP)
	$(BIN)/staronnx doctor
	$(BIN)/staronnx zoo build $(MODEL)
	$(BIN)/staronnx profile $(MODEL) --device cpu --batch 1,8 --runs 20 --warmup 3 \
		-o $(RESULTS)/costs.csv --force
	$(BIN)/staronnx split $(MODEL) --costs $(RESULTS)/costs.csv --offload 0.1 --parts 2 --method both \
		-o $(RESULTS)/plan --force
	$(BIN)/staronnx sweep $(MODEL) --workers cpu:2x1 --policy dmda --batch 1,2,4 --rate auto \
		--batches 30 --warmup 3 -o $(RESULTS)/sweep_whole --force
	$(BIN)/staronnx sweep $(RESULTS)/plan --workers cpu:2x1 --policy dmda --batch 1,2,4 --rate auto \
		--batches 30 --warmup 3 -o $(RESULTS)/sweep_split --force
	$(BIN)/staronnx plot $(RESULTS)/sweep_whole --kind envelope -o $(RESULTS)/envelope.png
	$(BIN)/staronnx plot $(RESULTS)/sweep_whole --kind batches -o $(RESULTS)/batches.png
	$(BIN)/staronnx plot $(RESULTS)/sweep_whole $(RESULTS)/sweep_split --kind splits -o $(RESULTS)/splits.png
	$(BIN)/staronnx report $(RESULTS)/sweep_whole $(RESULTS)/sweep_split -o $(RESULTS)/report.md --force
	@# exit 3: the advice is written, but this machine did not deliver it when confirmed (a busy machine's stall);
	@# its line says so, and make run's results stand
	$(BIN)/staronnx advise $(MODEL) --rate 20,40 -o $(RESULTS)/advice --force || [ $$? -eq 3 ]

## test: the type checker over staronnx_cli and experiments (the contracts held), then the test suite (tiny models; a few
## seconds of real ONNX Runtime sessions)
test: $(FULL_STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(FULL_STAMP)
	$(BIN)/ruff check staronnx_cli tests experiments
	$(BIN)/mypy

## faults: every adversarial case of issue 13 through the CLI, as a table in results/faults.md (about 5 minutes)
faults: $(FULL_STAMP)
	$(BIN)/python experiments/fault_cases.py --out results/faults.md

## bench: the zoo models (parameters, profile coverage) and the runtime (saturation, overhead, latency/ideal; its cost
## per task against issue 25's targets, and where the microseconds of one task go)
bench: $(STAMP)
	$(BIN)/python experiments/zoo_profile_bench.py --out results/bench
	$(BIN)/python experiments/runtime_bench.py --out results/bench/runtime
	$(BIN)/python experiments/overhead_bench.py --out results/bench/overhead
	$(BIN)/python experiments/hot_path.py --out results/bench/hot_path
	$(BIN)/python experiments/sim_bench.py
	$(BIN)/python experiments/advise_bench.py
	$(BIN)/python experiments/fleet_bench.py --out results/bench/fleet

## opara: operator parallelism (issue 28): a query's latency at low load, whole model vs ORT_PARALLEL vs a branch plan,
## here and simulated on an H100 (add OPARA_FLAGS=--rho-max for each one's saturation too)
opara: $(STAMP)
	$(BIN)/python experiments/opara_bench.py --out results/bench/opara $(OPARA_FLAGS)

## bench-gpu: on a GPU machine, staronnx's GPU worker (1, 2, 4 per GPU, auto) against native ONNX Runtime
bench-gpu: $(GPU_DEPS)
	$(GPU_PY) experiments/gpu_bench.py --model $(MODEL) --out results/bench/gpu

## compare: the paper's Fig. 3 on this machine: staronnx, native, roundrobin and Triton on googlenet
compare: $(FULL_STAMP)
	$(BIN)/python experiments/compare.py --model $(MODEL) --out results/compare

## compare-mix: googlenet and mobilenet_v3_small served together: staronnx (dmda, deadline) and Triton, the largest
## scale of their rates meeting both latency targets, in results/compare_mix/report.md
compare-mix: $(FULL_STAMP)
	$(BIN)/python experiments/compare_mix.py --out results/compare_mix

## paper-sim: the paper's four models on its machine (an estimate), simulated at offload 0, 5, 10, 15 %
paper-sim: $(STAMP)
	$(BIN)/python experiments/paper_sim.py --out results/paper_sim

## gpu-profile-check: on a GPU machine, profile --device cuda measures GPU time and splits on it hit their target
gpu-profile-check: $(GPU_DEPS)
	$(GPU_PY) experiments/gpu_profile_check.py --model $(MODEL) --out results/gpu_profile_check

## gpu-check: every GPU piece in one offline sequence, each step under its own cap (8 minutes at most);
## results/gpu_check/gpu_check.json says what passed. Without a GPU: "no GPU" per step, exit 0
GPU_CHECK_OUT ?= results/gpu_check
gpu-check: $(GPU_DEPS)
	$(GPU_PY) experiments/gpu_check.py --model $(MODEL) --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
