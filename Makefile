# pcseg developer commands.
#   make setup   create .venv and install the CPU stack (once; redone when pyproject.toml changes)
#   make test    setup + the test suite
#   make demo    setup + the synthetic end-to-end pipeline on CPU
#   make test-slurm  launch/slurm scripts on a real single-node SLURM cluster (installs slurm-wlm; root)
#   make test-browser  the scene viewer rendered by headless Chromium (installs chromium; root)
# GPU users pick their builds, e.g.:
#   make setup TORCH_SPEC="torch==2.4.1 --index-url https://download.pytorch.org/whl/cu121" EXTRAS=cu121,test
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= cpu,test
comma := ,
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup test test-slurm test-browser demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $@

test: setup
	$(PY) -m pytest -q

test-slurm: setup
	bash tests/slurm/run.sh

test-browser: setup
	PY=$(PY) bash tests/browser/run.sh

demo: setup
	$(PY) -m pcseg.demo --out runs/demo

clean:
	rm -rf $(VENV) runs build *.egg-info
