# Two entry points for a fresh machine: `make run` (the quick study) and `make test`.
# Both create .venv and install the pinned requirements on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# One setting decides where data comes from: a shared copy beside the checkout when there is
# one (tests and benchmarks here), otherwise the loaders' download cache.
ifneq ($(wildcard ../shared/data),)
export SEQATTN_DATA_DIR ?= $(abspath ../shared/data)
endif
export KERAS_BACKEND ?= torch

.PHONY: run test test-torch test-tensorflow bench paper-results paper clean

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

run: $(VENV)/.installed
	$(PY) sequence_attention.py --profile quick

test: test-torch test-tensorflow

test-torch: $(VENV)/.installed
	KERAS_BACKEND=torch $(PY) -m pytest -q

# The backend-sensitive subset (attention, models, saving/loading) again on tensorflow.
test-tensorflow: $(VENV)/.installed
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q -m backend

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run_all

# What the paper reports, into results/: on 2 cores, Parts 1-2 and then the Part 3 ablation in
# one lane, Part 3 in the other (each process uses one core); wall times in results/*/results.json.
paper-results: $(VENV)/.installed
	( $(PY) sequence_attention.py --profile paper --parts attention forecast --out results && \
	  $(PY) -m seqattn.cli video --profile paper --seeds 0 --models tap htap --horizon 30 \
	      --out results/ablations/horizon30 ) & first=$$!; \
	$(PY) sequence_attention.py --profile paper --parts video --out results && wait $$first

# main.pdf from results/ (run `make paper-results` first for new numbers).
paper: $(VENV)/.installed
	$(PY) -m paper.build

clean:
	rm -rf outputs .pytest_cache paper/build paper/generated
