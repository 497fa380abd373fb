# The README's two commands: `make demo` (the main job) and `make test`.
# Both create the virtual environment .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup demo compare test clean-runs

setup: $(INSTALLED)

# Re-installs only when requirements.txt or pyproject.toml changed since the last install.
$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(INSTALLED)

demo: setup
	$(PY) -m seglib demo --profile $(or $(PROFILE),demo)

# Notebook 03 again, after training the residual and attention U-Nets it compares with (~25 min at demo).
compare: setup
	$(PY) -m seglib demo --profile $(or $(PROFILE),demo) --notebooks 03 --train-contemporary

test: setup
	SEGLIB_PROFILE=smoke $(PY) -m pytest tests --nbval-lax notebooks

clean-runs:
	rm -rf runs reports/smoke
