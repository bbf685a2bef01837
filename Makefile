# Set-up and the commands of README.md. KDBOUNDS_DATA defaults to ../shared/data (the development
# machines and CI keep real CIFAR-10 there); override it to point at your own copy.
#
# PY is the interpreter everything is installed into and run with (default python3): use a virtual
# environment, e.g.  python3 -m venv .venv && make run PY=.venv/bin/python
# Installs are remembered by stamp files in .make/<interpreter id>/ that depend on pyproject.toml: pip
# runs again only when pyproject.toml changes or for another interpreter (`make install` forces it).
PY ?= python3
export KDBOUNDS_DATA ?= $(abspath ../shared/data)
PRESET ?= cpu
PIP := $(PY) -m pip install --disable-pip-version-check
STAMPS := .make/$(shell $(PY) -c "import hashlib, sys; print(hashlib.sha1(sys.executable.encode()).hexdigest()[:12])")
THREADS := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1}

.PHONY: install run test docs bench notebooks

# what the main job needs: torch and the package with its runtime dependencies (no test stack)
$(STAMPS)/run: pyproject.toml
	@echo "installing torch==2.13.0 and kdbounds into $(PY) (the first time: a few minutes, torch is large)"
	$(PIP) torch==2.13.0
	$(PIP) -e .
	@mkdir -p $(STAMPS) && touch $@

# the test stack (pytest, hypothesis, xdist, Ray, the notebook tools) and the API-reference builder
$(STAMPS)/test: $(STAMPS)/run
	@echo "installing the test stack (pytest, hypothesis, Ray, jupytext, nbclient, pdoc) into $(PY)"
	$(PIP) -e ".[test,docs]"
	@touch $@

$(STAMPS)/docs: $(STAMPS)/run
	$(PIP) -e ".[docs]"
	@touch $@

install:
	rm -rf $(STAMPS)
	$(MAKE) $(STAMPS)/test PY="$(PY)"

run: $(STAMPS)/run
	$(PY) experiments/sharpness_vs_gap.py --preset $(PRESET) --out results/sharpness_vs_gap/$(PRESET)

test: $(STAMPS)/test
	$(THREADS) $(PY) -m pytest -q -n 2 --dist loadgroup --durations=15

# API reference from the docstrings (pdoc; warnings are errors) into docs/api/
docs: $(STAMPS)/docs
	$(THREADS) $(PY) docs/build_api.py

bench: $(STAMPS)/run
	$(PY) -m pip install -q --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))")
	$(PY) benchmarks/run_all.py

# Rebuild the committed notebooks (full mode, outputs saved) from their jupytext sources notebooks/NN_*.py
notebooks: $(STAMPS)/test
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) notebooks/build.py
