# ipsd_mm: one command sets up, one runs the tests.
#   make setup   the isolated OpenMMLab stack in $(VENV) (first time: ~15 min, mmcv compiles)
#   make test    setup, then the test suite
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test
setup:
	IPSD_VENV=$(VENV) bash tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)
