# make run   sets up .venv (with the facerec command, .venv/bin/facerec) and runs the services in the
#            foreground (Ctrl-C stops them).
# make test  sets up .venv and runs the whole test suite.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: run test fuzz bench bench-people bench-home load clean

run: $(VENV)/.installed
	PYTHONPATH=. $(PYTHON) -m facerec.run

# scripts/install-chromium.sh: Debian's chromium for tests/test_web.py; scripts/install-firefox.sh: Debian's
# firefox-esr for the call page's Firefox test; scripts/install-postgresql.sh: PostgreSQL's server for the
# tests on it; scripts/install-mosquitto.sh: the MQTT broker (each at once when it is there already).
test: $(VENV)/.installed-test
	sh scripts/install-chromium.sh
	sh scripts/install-firefox.sh
	sh scripts/install-postgresql.sh
	sh scripts/install-mosquitto.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) -m pytest

# The fuzz targets of tests/test_fuzz.py with many examples (make test runs them briefly).
fuzz: $(VENV)/.installed-test
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) FACEREC_FUZZ_PROFILE=long $(PYTHON) -m pytest -p no:warnings tests/test_fuzz.py

# facerec next to the reference pipelines, and the store at 10 k to 1 M faces (not part of make test);
# chromium measures a call's glass-to-glass latency.
# ARGS="--photos DIR" measures your own photos. Everything, the references too, runs on the OpenBLAS kernels
# the services choose (facerec/service/blas.py), so the comparison is of pipelines, not of BLAS kernels.
bench: $(VENV)/.installed-bench
	sh scripts/install-chromium.sh
	env $$(PYTHONPATH=. $(PYTHON) -m facerec.service.blas) PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/bench.py $(ARGS)

# How well faces are grouped into people, on every labelled set (not part of make test): writes
# bench/people-results.json. One BLAS thread, as in the store service (store_service/gunicorn.conf.py).
bench-people: $(VENV)/.installed-bench
	OPENBLAS_NUM_THREADS=1 PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/people.py

# The home-camera integrations (not part of make test; docs/home.md): DeepStack recognize on every labelled
# set, its time beside /detect, and the delay from a camera's frame to its MQTT message (needs mosquitto).
bench-home: $(VENV)/.installed-test
	sh scripts/install-mosquitto.sh
	env $$(PYTHONPATH=. $(PYTHON) -m facerec.service.blas) PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/home.py $(ARGS)

# Ten minutes of mixed load at saturation, bad uploads included (not part of make test).
load: $(VENV)/.installed
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/load.py

# The last step puts the facerec command (facerec/cli) in $(VENV)/bin/facerec, running this checkout's code.
$(VENV)/.installed: requirements.txt scripts/install-dlib.sh pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	sh scripts/install-dlib.sh $(PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps deepstack-sdk==0.2.1
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-bench.txt
	touch $@

clean:
	rm -rf $(VENV)
