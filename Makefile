# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.spikeforge-installed

.PHONY: install demo test bench docs conformance lint clean browser

install: $(STAMP)

# norse is installed without its dependencies: it lists torchvision, and PyPI's torchvision does not import
# beside the CPU torch 2.13.0 build (norse itself never imports it). lava-nc declares Python <3.11 and
# numpy<2: its dependencies come from requirements-dev.txt, lava itself with --no-deps
# --ignore-requires-python; spikeforge.backends.loihi._lava_compat fixes it at import time.
$(STAMP): pyproject.toml setup.py requirements-dev.txt constraints-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints-dev.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps -c constraints-dev.txt norse
	$(PIP) install -q --no-deps --ignore-requires-python -c constraints-dev.txt lava-nc
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(VENV)/bin/spikeforge demo

# Debian's chromium for the report browser test (best effort; the test skips with a reason without it)
browser:
	@bash tools/ensure_chromium.sh

test: install browser
	$(PY) -m ruff check toolchain frontends backends emulators boards tests benchmarks examples tools
	$(PY) -m pytest

# Heavy comparisons against peers (Lava, snnTorch, Norse, Brian2, ...): not part of CI.
bench: install
	if [ -f benchmarks/requirements-bench.txt ]; then $(PIP) install -q -c constraints-dev.txt -r benchmarks/requirements-bench.txt; fi
	$(PY) -m pytest -m slow -q -p no:cacheprovider || test $$? -eq 5
	bash benchmarks/aihwkit_setup.sh || echo "aihwkit build failed: bench_rram.py compares with numpy/torch only"
	$(PY) benchmarks/run_all.py

# API reference from docstrings (pdoc, offline) into build/docs/ (ignored by git). tests/test_docs.py builds it too.
DOC_MODULES := spikeforge.api spikeforge.artifact spikeforge.verify spikeforge.interfaces spikeforge.errors spikeforge.boardspec spikeforge.options spikeforge.semantics
docs: install
	$(PY) -m pdoc --no-show-source -o build/docs $(DOC_MODULES)
	@echo "API reference: build/docs/index.html"

# Models made with the real tools (snnTorch, Norse, torch.onnx.export, state_dicts, Brian2, NIR files from other
# tools) x every board -> docs/conformance.md. Not in CI (tens of minutes); tests/test_conformance.py runs a subset.
conformance: install
	$(PY) benchmarks/conformance.py --doc docs/conformance.md

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .venv-aihwkit build *.egg-info
