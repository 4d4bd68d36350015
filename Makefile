# The README's commands. `make demo` and `make test` are all a fresh machine needs.
.PHONY: demo setup test lint build train evaluate benchmark

# The app trains every method without a model in the background (MMR_TRAIN_IN_BACKGROUND=0: it does not).
demo: setup
	HF_HUB_OFFLINE=1 .venv/bin/python app.py

setup:
	bash scripts/setup.sh

test:
	bash scripts/setup.sh --test
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

build:
	.venv/bin/python -m mmr build

# Every method without a model, in dependency order (mmr/retrievers TRAINING_ORDER); prints the time each took.
train:
	HF_HUB_OFFLINE=1 .venv/bin/python -m mmr train-all

evaluate:
	.venv/bin/python -m mmr evaluate --out reports/evaluation.md

benchmark:
	.venv/bin/python -m mmr benchmark --out reports/benchmark.md
