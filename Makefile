# The README's commands. `make demo` and `make test` are all a fresh machine needs.
.PHONY: demo setup test lint build evaluate benchmark

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

evaluate:
	.venv/bin/python -m mmr evaluate --out reports/evaluation.md

benchmark:
	.venv/bin/python -m mmr benchmark --out reports/benchmark.md
