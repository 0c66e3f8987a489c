# Two entry points for a fresh machine: `make run` (the quick study) and `make test`.
# Both create .venv and install the pinned requirements on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Extra pip options for the install, e.g. PyTorch's CPU index (README, "Two commands").
PIP_EXTRA ?=
# One setting decides where data comes from: a shared copy beside the checkout (../shared/data)
# when there is one, otherwise the loaders' download cache.
ifneq ($(wildcard ../shared/data),)
export SEQATTN_DATA_DIR ?= $(abspath ../shared/data)
endif
# tensorflow: the fastest backend for the study's training steps on a 2-core CPU, by the geometric
# mean over them (seqattn.backend.DEFAULT_BACKEND, benchmarks/RESULTS.md). Tests name their backend themselves.
export KERAS_BACKEND ?= tensorflow

.PHONY: run test test-torch test-tensorflow bench paper-results paper-results-forecast paper-results-video paper-results-budget paper clean

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIP_EXTRA) -r requirements-test.txt
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

# What the paper reports, into results/: Part 1, then Parts 2 and 3 on 2 cores, each in two lanes
# of one TensorFlow thread, whose trained models the last command of each gathers, evaluates and
# reports. Part 2: ETTh1 at L=336 then the chaotic series; ETTh1 at L=96 and 720. Part 3: seeds 0-1
# of TAP and H-TAP, then ConvLSTM seed 1; seed 2 of every model, ConvLSTM seed 0, then the paper's
# ablation (seed 0 of TAP and H-TAP on the first lane's codec, trained on rollouts of up to 90 frames
# instead of 30). Wall times in results/*/results.json and results/README.md.
LANE2 := results/.lane2
ROLLOUT90 := results/ablations/rollout90
FORECAST_LANE2 := results/.forecast-lane2
paper-results: $(VENV)/.installed
	$(PY) sequence_attention.py --profile paper --parts attention --out results
	$(MAKE) paper-results-forecast
	$(MAKE) paper-results-video

paper-results-forecast: $(VENV)/.installed
	export KERAS_BACKEND=tensorflow TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1; \
	( $(PY) -m seqattn.cli forecast --profile paper --dataset etth1 --lookback 336 --out results && \
	  $(PY) -m seqattn.cli forecast --profile paper --dataset mackey-glass lorenz --out results ) & first=$$!; \
	$(PY) -m seqattn.cli forecast --profile paper --dataset etth1 --lookback 96 720 --out $(FORECAST_LANE2) && \
	wait $$first && cp -Rn $(FORECAST_LANE2)/forecast/state/. results/forecast/state/ && \
	$(PY) sequence_attention.py --profile paper --parts forecast --out results

paper-results-video: $(VENV)/.installed
	export KERAS_BACKEND=tensorflow TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1; \
	( $(PY) -m seqattn.cli video --profile paper --seeds 0 1 --models tap htap --out results && \
	  $(PY) -m seqattn.cli video --profile paper --seeds 1 --models convlstm --out results ) & first=$$!; \
	$(PY) -m seqattn.cli video --profile paper --seeds 2 --out $(LANE2) && \
	$(PY) -m seqattn.cli video --profile paper --seeds 0 --models convlstm --out $(LANE2) && \
	mkdir -p $(ROLLOUT90)/video/runs && cp -Rn results/video/runs/codec-seed0-* $(ROLLOUT90)/video/runs/ && \
	$(PY) -m seqattn.cli video --profile paper --seeds 0 --models tap htap --horizon 90 --out $(ROLLOUT90) && \
	wait $$first && cp -Rn $(LANE2)/video/runs/. results/video/runs/ && \
	$(PY) sequence_attention.py --profile paper --parts video --out results

# Beyond the paper profile's 2 h 31 min, for the paper's ablation paragraph: TAP and H-TAP trained on
# 2x (seed 0) and 4x (seeds 0-2) the paper's transition updates, the same recipe with longer stages,
# in two lanes on the paper run's codecs when results/video/runs holds them (else each lane trains
# its seeds' codecs again); the last command gathers the 4x seeds. The committed run took two rounds
# of 43 and 44 min on the 2 cores (results/README.md); run it after `make paper-results-video`, then
# `make paper`.
UPDATES2X := results/ablations/updates1920
UPDATES4X := results/ablations/updates3840
BUDGET_LANE2 := results/.budget-lane2
paper-results-budget: $(VENV)/.installed
	export KERAS_BACKEND=tensorflow TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1; \
	for out in $(UPDATES2X) $(UPDATES4X) $(BUDGET_LANE2); do \
	  mkdir -p $$out/video/runs && cp -Rn results/video/runs/codec-seed* $$out/video/runs/ 2>/dev/null; \
	done; \
	( $(PY) -m seqattn.cli video --profile paper --seeds 0 --models tap htap --train-sequences 7680 \
	    --out $(UPDATES2X) && \
	  $(PY) -m seqattn.cli video --profile paper --seeds 2 --models tap htap --train-sequences 15360 \
	    --out $(BUDGET_LANE2) ) & first=$$!; \
	$(PY) -m seqattn.cli video --profile paper --seeds 0 1 --models tap htap --train-sequences 15360 \
	  --out $(UPDATES4X) && \
	wait $$first && cp -Rn $(BUDGET_LANE2)/video/runs/. $(UPDATES4X)/video/runs/ && \
	$(PY) -m seqattn.cli video --profile paper --seeds 0 1 2 --models tap htap --train-sequences 15360 \
	  --out $(UPDATES4X)

# main.pdf from results/ (run `make paper-results` first for new numbers).
paper: $(VENV)/.installed
	$(PY) -m paper.build

clean:
	rm -rf outputs .pytest_cache paper/build paper/generated
