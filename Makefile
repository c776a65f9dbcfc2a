# Two commands on a fresh machine:  `make run`  (the console, on SQLite)  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SIMULATOR_PORT ?= 8001
DEMO_PASSWORD ?= demo-console-pass

.PHONY: run test lint install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: export DEBUG := true
run: $(VENV)/.installed
	$(PY) manage.py dev_env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --password "$(DEMO_PASSWORD)" --simulator-url http://127.0.0.1:$(SIMULATOR_PORT)
	exec $(PY) manage.py devstack --port $(PORT) --simulator-port $(SIMULATOR_PORT) --password-hint "$(DEMO_PASSWORD)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=sqlite:///:memory: DJANGO_SETTINGS_MODULE=console.test_settings $(PY) manage.py makemigrations --check --dry-run

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
