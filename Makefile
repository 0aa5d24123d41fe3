# Two commands set up a fresh machine: `make demo` (the main job on the synthetic world) and `make test`.
# Each creates .venv if absent and installs requirements.txt into it (again only when the file changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo lint clean-venv

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	PYOPENGL_PLATFORM=egl $(PY) -m pytest -q tests

demo: $(STAMP)
	PYTHON=$(PY) bash run_on_synthetic.sh --preset demo

clean-venv:
	rm -rf $(VENV)
