# Two commands set everything up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: install test lint demo clean

# torch and torchvision are installed first, as the pinned pair that loads together; left to
# torch-pruning and timm, pip would pick a newer torch that torchvision 0.29.1 cannot load.
# The ray, mlflow and hf extras are installed too, so that their tests run (they leave torch as is).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,mlflow,hf]'
	touch $(STAMP)

install: $(STAMP)

# The quality gates, then the tests (doctests of every module included).
lint: install
	$(VENV)/bin/ruff check prune_info tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/prune-info run --data digits --arch 64-100-100-10 --criterion mi --amount 0.5 \
		--out $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/report.html (open it in a browser; rerun to reuse every stage)"

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info .pytest_cache
