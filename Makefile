# sdbench: two commands set everything up on a fresh clone.
#   make demo   create .venv, install, run a small toy sweep, print where the report is
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test lint test-slow bench study claims claims-exploratory claims-cost controls install clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: pip takes the pinned build from local disk where it lies there.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

DEMO_OUT ?= runs/demo

demo: $(STAMP)
	$(BIN)/sdbench sweep sweeps/demo-prompts.txt --loss sds,vdm --rep gaussians --steps 300 --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# The toy study (docs/toy-study.md): resumable; rerun to continue after an interruption.
STUDY_OUT ?= runs/toy-study
study: $(STAMP)
	status=0; $(BIN)/sdbench sweep sweeps/toy-study.toml --out $(STUDY_OUT) --wandb disabled || status=$$?; \
	$(BIN)/sdbench report $(STUDY_OUT) --markdown docs/toy-study.md && exit $$status

# The claims study (docs/claims.md, pre-registered): the sweep (resumable; rerun to continue) and its verdicts,
# written into docs/claims.md's results block. CLAIMS_ARGS: e.g. --address auto (a Ray cluster); CLAIMS_REPORT_ARGS:
# e.g. --gpu-timings benchmarks/results/gpu.json (C22, needs per-step times from a GPU run of benchmarks.gpu).
# The Pareto plot's seconds come from benchmarks/results/claims_cost.json (each arm timed alone: make claims-cost)
# where it exists, else from the sweep's own trials. The exploratory replications (image, equal NFE: `make
# claims-exploratory`, after the confirmatory sweep) are read with it where their sweep directories exist.
CLAIMS_OUT ?= runs/claims
CLAIMS_COST := benchmarks/results/claims_cost.json
CLAIMS_MORE := runs/claims-nfe runs/claims-image
CLAIMS_REPORT = $(BIN)/sdbench report $(CLAIMS_OUT) --no-fid --claims docs/claims.md \
	  $(if $(wildcard $(CLAIMS_COST)),--cpu-timings $(CLAIMS_COST)) \
	  $(foreach d,$(CLAIMS_MORE),$(if $(wildcard $(d)/trials),--claims-with $(d))) $(CLAIMS_REPORT_ARGS)
claims: $(STAMP)
	status=0; $(BIN)/sdbench sweep sweeps/claims.toml --out $(CLAIMS_OUT) --wandb disabled --no-fid $(CLAIMS_ARGS) || status=$$?; \
	$(CLAIMS_REPORT) && exit $$status

# The exploratory replications (resumable): equal NFE (sweeps/claims-nfe.toml, 1.0 h measured on the 2 cores) and image
# (sweeps/claims-image.toml, ~2 h estimated), then the claims report over all three sweeps.
claims-exploratory: $(STAMP)
	status=0; for s in nfe image; do \
	  $(BIN)/sdbench sweep sweeps/claims-$$s.toml --out runs/claims-$$s --wandb disabled --no-fid $(CLAIMS_ARGS) || status=$$?; \
	done; $(CLAIMS_REPORT) && exit $$status

claims-cost: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.claims_cost

# The positive controls (docs/controls.md) on the shipped world, v2.1 (amendment 2): resumable (trial folders in
# runs/controls-v21); writes benchmarks/results/controls_v21.json and docs/images/control_*_v21.png. v2.0's run
# (controls.json, runs/controls) was made with the weights shipped before commit 0726f16.
controls: $(STAMP)
	$(BIN)/python -m benchmarks.controls --label v21 --work runs/controls-v21

clean-venv:
	rm -rf $(VENV)
