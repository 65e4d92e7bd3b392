# The README's commands. Each target creates the virtual environment it needs.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch 2.14.1 + torchvision 0.29.1: one build that runs on the CPU (and CUDA); pinned so pip takes
	# these and never pulls another multi-GB build.
	$(VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/ssgan train --config configs/demo.yaml

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
