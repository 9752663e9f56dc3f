# mcusearch — two entry points: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm dataset-fashion-mnist postgresql-15 chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_USE_LEGACY_KERAS := 1
PYTEST_ARGS ?=
# pytest-xdist workers (one test file per worker at a time); TEST_JOBS=0 runs in this process
TEST_JOBS ?= 2

.PHONY: demo test setup apt venv clean bench
# The default search; ends with the Pareto table, the recommended MCU and reports/search.html.
demo: setup
	$(PY) -m mcusearch run search.yaml

test: setup
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

setup: apt venv

# Debian packages: installed only when one is missing (idempotent).
apt:
	@if dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -qv 'install ok installed' \
	   || [ "$$(dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | wc -l)" -ne $(words $(APT_PACKAGES)) ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else echo "Debian packages present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/base.txt requirements/nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/base.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements/nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

bench: setup
	$(PY) bench/codegen.py

# The 2020 study reproduced (issue 15): its experiments as grid searches, a free search under its
# constraints, reports/thesis/thesis.html. Resumable. QUICK=1: a small subset (CI) into reports/thesis-quick.
.PHONY: thesis
thesis: setup
	$(PY) bench/thesis/run.py $(if $(QUICK),--quick)

clean:
	rm -rf reports $(VENV) .pytest_cache
