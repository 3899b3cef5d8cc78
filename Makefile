# The two commands of the README: `make dashboard` and `make test`.
VENV := .venv/bin

.PHONY: setup dashboard test lint format bench

setup:
	bash scripts/bootstrap.sh

dashboard: setup
	$(VENV)/streamlit run dashboard/app.py

test: setup
	bash scripts/install_browser.sh
	$(VENV)/ruff format --check .
	$(VENV)/ruff check .
	$(VENV)/python -m pytest

lint:
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

bench: setup
	$(VENV)/python -m benchmarks
