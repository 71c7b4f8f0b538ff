# Every target sets itself up: Debian packages when missing, a .venv, the editable install.
# A second run only re-installs when pyproject.toml or setup.py changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MYPY_SRC := build/mypy-src
PACKAGES := agent coordinator protos models
PYTEST_ARGS ?=

.PHONY: all setup demo test lint typecheck pytest proto clean

all: test

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py .ci/setup-system.sh
	bash .ci/setup-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[coordinator,dev]'
	touch $@

# mypy cannot follow setuptools' editable import hook, so it reads the sources through a
# symlink tree shaped like the installed namespace (novacron/agent -> agent, ...).
$(MYPY_SRC)/novacron:
	mkdir -p $@
	for p in $(PACKAGES); do ln -sfn ../../../$$p $@/$$p; done

demo: $(STAMP)
	$(BIN)/python -m tests.fixtures.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) $(MYPY_SRC)/novacron
	MYPYPATH=$(MYPY_SRC) $(BIN)/mypy $(addprefix -p novacron.,$(PACKAGES))
	MYPYPATH=$(MYPY_SRC) $(BIN)/mypy bench tests

pytest: $(STAMP)
	$(BIN)/pytest -q -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

proto: $(STAMP)
	$(BIN)/python -m novacron.protos.codegen

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
