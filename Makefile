# The README's commands. `make demo` and `make test` are all a fresh machine needs.
.PHONY: demo setup test lint build train evaluate benchmark

# Order matters: the sparse retriever distils the best dense model, so it trains last.
TRAINED = borrowed-captions procrustes procrustes-gmlp dense-inbatch univl-dr marvel ciea lsr

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

train:
	for name in $(TRAINED); do HF_HUB_OFFLINE=1 .venv/bin/python -m mmr train $$name || exit 1; done

evaluate:
	.venv/bin/python -m mmr evaluate --out reports/evaluation.md

benchmark:
	.venv/bin/python -m mmr benchmark --out reports/benchmark.md
