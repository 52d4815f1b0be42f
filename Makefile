# visiondl-keras: the commands the README names. Everything runs inside ./.venv (created on demand).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
CHECKPOINT := artifacts/checkpoints/scratch_airbench94.keras

.PHONY: help run dashboard test exercises test-fast test-jax lint book test-book serve-book reference ablation ablation-fast benchmarks clean-book reset-exercises grade

help:
	@echo "make run         install, then the headline: calibrated predictions for samples/ (or a quick train+evaluate)"
	@echo "make dashboard   the classroom dashboard in your browser (http://127.0.0.1:7860, local only)"
	@echo "make test        install what the tests need, then run the package tests and the exercise solutions"
	@echo "make exercises   (students) run the graded exercise tests on your code in exercises/"
	@echo "make test-jax    the backend smoke subset on JAX"
	@echo "make book        build the Jupyter Book (lessons executed, quick mode) into _build/html"
	@echo "make test-book   open the built book in headless Chromium (pages load, images, no error outputs)"
	@echo "make reference   the full reference training run (the fast recipe, preset 94; about half an hour on 2 CPU cores; resumable)"
	@echo "make ablation    the augmentation ablation on a small ResNet-9 budget (make ablation-fast: the fast recipe,"
	@echo "                 10 epochs on the full training split, 2 seeds; about 2 hours on 2 CPU cores; resumable)"
	@echo "make benchmarks  the speed benchmarks"

$(VENV)/.installed-core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[cpu]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-core pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@

$(VENV)/.installed-dashboard: $(VENV)/.installed-core pyproject.toml
	$(PIP) install --quiet -e ".[dashboard]"
	touch $@

$(VENV)/.installed-book: $(VENV)/.installed-core pyproject.toml
	$(PIP) install --quiet -e ".[book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The headline: calibrated predictions of the shipped model for one test image per class
# (samples/ is written from your CIFAR-10 copy first); without a shipped model, a quick
# train-and-evaluate run on the available data.
run: $(VENV)/.installed-core $(VENV)/.installed-dashboard
	@if [ -f $(CHECKPOINT) ]; then \
		ls samples/*.png >/dev/null 2>&1 || $(PY) -m visiondl_keras samples --out samples --quiet; \
		$(PY) -m visiondl_keras.infer samples/ --top-k 3; \
	else \
		$(PY) -m visiondl_keras train --quick --run-dir runs/quick; \
	fi

dashboard: $(VENV)/.installed-dashboard
	$(PY) -m visiondl_keras dashboard

test: $(VENV)/.installed-dev $(VENV)/.installed-dashboard
	$(VENV)/bin/ruff check visiondl_keras tests benchmarks exercises $(wildcard solutions)
	$(VENV)/bin/pytest tests
	@if [ -d solutions ]; then $(VENV)/bin/pytest exercises --solutions -q -p no:cacheprovider; \
	else echo "no solutions/ (a student copy): solution checks skipped"; fi

exercises: $(VENV)/.installed-dev
	$(VENV)/bin/pytest exercises -q -p no:cacheprovider

test-fast: $(VENV)/.installed-dev
	$(VENV)/bin/pytest tests -m "not slow and not integration" -q

test-jax: $(VENV)/.installed-dev
	KERAS_BACKEND=jax $(VENV)/bin/pytest -q -m "not slow and not integration" \
		tests/test_schedules.py tests/test_augment.py tests/test_backend_smoke.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check visiondl_keras tests benchmarks exercises $(wildcard solutions)

book: $(VENV)/.installed-book
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test-book: $(VENV)/.installed-dev $(VENV)/.installed-book
	$(VENV)/bin/pytest -q tests/test_book.py

serve-book:
	@echo "serving _build/html at http://localhost:8000"
	$(PYTHON) -m http.server --directory _build/html 8000

clean-book:
	rm -rf _build

reference: $(VENV)/.installed-core
	$(PY) -m visiondl_keras train --preset 94 --run-dir runs/reference

ablation: $(VENV)/.installed-core
	$(PY) -m visiondl_keras ablate-augment --out artifacts

ablation-fast: $(VENV)/.installed-core
	$(PY) -m visiondl_keras ablate-augment --recipe fast --out artifacts

benchmarks: $(VENV)/.installed-dev
	$(PY) benchmarks/augment_throughput.py
	$(PY) benchmarks/time_to_accuracy.py

reset-exercises: $(VENV)/.installed-core
	$(PY) -m visiondl_keras grade --reset

grade: $(VENV)/.installed-dev
	$(PY) -m visiondl_keras grade submissions/ --out gradebook.csv
