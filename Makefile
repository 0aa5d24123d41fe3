# Two commands set up a fresh machine: `make demo` (the main job on the synthetic world) and `make test`.
# Each creates .venv if absent and installs requirements.txt, then requirements-mediapipe.txt with --no-deps (MediaPipe
# declares numpy<2 and opencv-contrib; its real needs are pinned in requirements.txt), again only when they change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo lint clean-venv

install: $(STAMP)

$(STAMP): requirements.txt requirements-mediapipe.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-mediapipe.txt
	touch $(STAMP)

# OMP_WAIT_POLICY=PASSIVE (also set by every script and program unless the user sets it): OpenMP threads that
# busy-wait collapse on 2 shared cores (a 4 s test took 57 s)
test: $(STAMP)
	PYOPENGL_PLATFORM=egl OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q tests

demo: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} PYTHON=$(PY) bash run_on_synthetic.sh --plan demo

clean-venv:
	rm -rf $(VENV)
