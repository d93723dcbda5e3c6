# akg-op developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_REQUEST ?= Generate a relu kernel, input (128, 4096), fp32, on H100 with Triton

.PHONY: install browser demo test bench clean

install: $(STAMP)

# Idempotent: rebuilt only when pyproject.toml changes. torch is installed first and pinned,
# so a CPU-only machine takes the local CPU build instead of GBs of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/akg-op run "$(DEMO_REQUEST)" --yes --out demo_output

# The playground test drives the system Chromium (Playwright downloads no browser of its own here).
# Installed where apt-get is usable as root; elsewhere that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "no Chromium: the playground browser test will be skipped"

# The Ray executor's tests need the optional ray extra; torch is already pinned by then.
test: install browser
	$(PY) -c "import ray" 2>/dev/null || $(PY) -m pip install -q -e ".[ray]"
	$(PY) -m pytest -q -ra

# On a CUDA machine: the embedded suite, side by side with eager and torch.compile. The table goes
# to an untracked file unless asked (make bench BENCH_OUT=bench/results/h100.md); without CUDA the
# runner stops at once.
BENCH_OUT ?= bench_output/suite.md
bench: install
	@mkdir -p $(dir $(BENCH_OUT))
	$(PY) -m bench.run_suite --device cuda --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) demo_output bench_output .pytest_cache
