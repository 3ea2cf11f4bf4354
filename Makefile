# textmtl: every target creates/updates the virtual environment first (idempotent: it reinstalls
# only when settings.ini or setup.py changed), so a brand-new machine needs nothing but python3 and make.
#
#   make train    # prepare data if missing, then train + evaluate the quick configuration
#   make test     # the whole test suite (notebooks + tests/)
#
# Variables: CONFIG=configs/training/default.yaml, ARGS="--resume" (or --overwrite), PYTHON=python3.11,
#            TEXTMTL_MIRROR=/path/to/mirror

PYTHON ?= python3
VENV   ?= .venv
CONFIG ?= configs/training/quick.yaml
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.textmtl-installed

# Offline machines: use the datasets mirror that sits beside the checkout, unless one is already set.
ifeq ($(origin TEXTMTL_MIRROR), undefined)
  ifneq ($(wildcard ../shared/datasets),)
    export TEXTMTL_MIRROR := $(abspath ../shared/datasets)
  endif
endif

.PHONY: train test install export clean-nbs docs lab

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[make] installing textmtl and its requirements into $(VENV) (the first time takes a few minutes)"
	@$(BIN)/python -m pip install -qq --upgrade pip setuptools wheel   # -qq: errors only (not pip's or setuptools' notices)
	@$(BIN)/python -m pip install -qq -e ".[dev]"
	@$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/textmtl train --config $(CONFIG) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

lab: $(STAMP)   # JupyterLab refuses root without --allow-root (containers run as root)
	$(BIN)/jupyter lab nbs/ $(if $(filter 0,$(shell id -u)),--allow-root)

docs: $(STAMP)
	$(BIN)/textmtl docs
