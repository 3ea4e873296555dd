# Two commands set everything up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: install test demo clean

# torch is installed first and pinned: the CPU wheel `torch==2.13.0` resolves locally, while an
# unpinned torch pulled in by torch-pruning would download several GB of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/prune-info train --data digits --arch 64-100-100-10 --act relu --reg l2 \
		--epochs 20 --seed 0 -o $(DEMO_OUT)/model.pt
	$(VENV)/bin/prune-info info --json $(DEMO_OUT)/model.pt > $(DEMO_OUT)/summary.json
	@echo "summary saved to $(DEMO_OUT)/summary.json"

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info .pytest_cache
