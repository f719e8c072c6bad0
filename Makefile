# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the tests).
# Both create ./.venv with Python >= 3.10 and install edge-tl into it; nothing is installed globally.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint env-train env-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

env-train: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[train,cpu]"

env-dev: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[train,cpu,dev]"
	@# Triton's own server (python backend) from the nvidia-pytriton wheel, unpacked, not
	@# installed (the wheel pins numpy<2); without it the Triton tests skip
	@test -x $(VENV)/tritonserver/bin/tritonserver || $(BIN)/python -m edge_tl.bench.triton_server \
		--install $(VENV)/tritonserver >/dev/null || echo "tritonserver not unpacked: Triton tests will skip"

demo: env-train
	$(BIN)/edge-tl demo

# pytest exits 5 when it collects no tests: say so instead of failing without a word.
test: env-dev
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: env-dev
	$(BIN)/ruff check edge_tl tests && $(BIN)/ruff format --check edge_tl tests
