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

# The main job: DigitScenes, baseline vs IPSD for segmentation and detection, on the CPU.
DEMO_ARGS ?=
.PHONY: demo
demo: setup
	cd tools && $(PY) run_demo.py --work-dir $(CURDIR)/work_dirs/demo $(DEMO_ARGS)
