# The workbook's commands. Each one creates or updates the project-local virtual
# environment (.venv) first, so a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONHASHSEED := 0
export PLOTLY_RENDERER := plotly_mimetype

.PHONY: lab test notebooks execute bench grpc site redis clean help

help:
	@echo "make lab        open JupyterLab on notebooks/"
	@echo "make test       run every test, the notebooks under strict nbval included"
	@echo "make notebooks  execute every notebook headless with papermill into build/"
	@echo "                (one notebook, new parameters: make notebooks NB=00_tour P='-p k_max 16 -p seed 7')"
	@echo "make execute    re-execute every notebook in place (after editing one)"
	@echo "make bench      run the benchmarks, writing benchmarks/RESULTS.md"
	@echo "make grpc       regenerate workbook/transport/inventory_pb2*.py from inventory.proto"
	@echo "make site       build the executed notebooks into a static HTML site in build/site/"

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) scripts/check_python.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# JupyterLab refuses to run as root without --allow-root (containers, CI machines)
ROOT_FLAG := $(shell [ "$$(id -u 2>/dev/null)" = "0" ] && echo --allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/

test: $(STAMP)
	$(BIN)/python -m pytest --nbval

notebooks: $(STAMP)
	$(BIN)/python scripts/run_papermill.py $(if $(NB),--notebook $(NB)) $(P)

execute: $(STAMP)
	$(BIN)/python scripts/execute_notebooks.py $(NB)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

grpc: $(STAMP)
	$(BIN)/python scripts/grpc_codegen.py

site: $(STAMP)
	$(BIN)/python scripts/build_site.py $(NB)

clean:
	rm -rf build .pytest_cache
