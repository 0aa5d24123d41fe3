# Two commands set up a fresh machine: `make demo` (the main job on the synthetic world) and `make test`.
# Each creates .venv if absent and installs requirements.txt, then requirements-mediapipe.txt with --no-deps (MediaPipe
# declares numpy<2 and opencv-contrib; its real needs are pinned in requirements.txt), again only when they change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo example programs lint clean-venv

install: $(STAMP)

$(STAMP): requirements.txt requirements-mediapipe.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-mediapipe.txt
	touch $(STAMP)

# OMP_WAIT_POLICY=PASSIVE (also set by every script and program unless the user sets it): OpenMP threads that
# busy-wait collapse on 2 shared cores (a 4 s test took 57 s)
# In CI (CI set) the real programs the export tests drive are installed first, as far as the machine allows.
test: $(STAMP)
	if [ -n "$${CI:-}" ]; then $(MAKE) --no-print-directory programs; fi
	PYOPENGL_PLATFORM=egl OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q tests

# Optional: Chromium, Blender and the Khronos glTF validator, which tests/test_animation_export.py and
# tests/test_viewer.py use to check the exports in the real programs (each test skips with its reason without them).
# Needs root for apt-get; every step may fail without failing the target.
programs:
	-command -v chromium >/dev/null && command -v blender >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq; apt-get install -y -qq --no-install-recommends chromium blender python3-numpy >/dev/null); }
	-npm ls -g gltf-validator >/dev/null 2>&1 || { command -v npm >/dev/null && npm install -g --silent gltf-validator@2.0.0-dev.3.10; }

# docs/example/: the first seconds of the demo's adapted track as .glb, .bvh and view.html
example: $(STAMP)
	test -f exps/synthetic_demo/DynaBOA_smpl_j2d/results.npz || $(MAKE) demo
	PYOPENGL_PLATFORM=egl OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(PY) docs/make_example_export.py

demo: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} PYTHON=$(PY) bash run_on_synthetic.sh --plan demo

clean-venv:
	rm -rf $(VENV)
