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
	$(VENV)/bin/prune-info run --data digits --arch 64-100-100-10 --criterion mi --amount 0.5 \
		--out $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/report.html (open it in a browser; rerun to reuse every stage)"

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info .pytest_cache
