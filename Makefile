# The two commands a researcher needs: `make report` and `make test`.
# Each builds the project's virtual environment first when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUDY ?= demo
MONTH ?= 2026-11

.PHONY: report test demo check clean

# gbstats (GrowthBook's engine) checks our statistics in tests only; its pins
# (pandas<2, numpy<2) are older than ours, and the functions we call need neither.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "gbstats==0.8.0"
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/heard report --study $(STUDY) --month $(MONTH)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/heard demo

check: $(STAMP)
	$(BIN)/heard check $(STUDY)

clean:
	rm -rf reports/_output _freeze .quarto
