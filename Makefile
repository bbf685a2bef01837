# Set-up and the two commands of README.md. KDBOUNDS_DATA defaults to ../shared/data (the
# development machines and CI keep real CIFAR-10 there); override it to point at your own copy.
PY ?= python3
export KDBOUNDS_DATA ?= $(abspath ../shared/data)
PRESET ?= default

.PHONY: install run test bench notebooks
install:
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"

run: install
	$(PY) experiments/sharpness_vs_gap.py --preset $(PRESET) --out results/sharpness_vs_gap/$(PRESET)

test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1} $(PY) -m pytest -q -n 2 --dist loadgroup --durations=15

bench: install
	$(PY) -m pip install -q --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))")
	$(PY) benchmarks/run_all.py

# Rebuild the committed notebooks (full mode, outputs saved) from their jupytext sources notebooks/NN_*.py
notebooks: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) notebooks/build.py
