# skinage: `make demo` runs the main job, `make test` runs the tests.
# Both first run `make setup`, which is quick when nothing is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skinage-setup-done

.PHONY: setup demo test bench clean-venv weights

setup: $(STAMP)
	@$(PY) -m skinage.models.weights install --quiet

$(STAMP): pyproject.toml Makefile skinage/models/weights.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo "skinage set-up complete: $(VENV)"

# Re-check / re-install the pretrained ImageNet weights only (idempotent).
weights: setup
	$(PY) -m skinage.models.weights install

demo: setup
	$(VENV)/bin/skinage demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
