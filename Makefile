# make run   sets up .venv and runs both services in the foreground (Ctrl-C stops both).
# make test  sets up .venv and runs the whole test suite.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: run test fuzz bench-latency load clean

run: $(VENV)/.installed
	PYTHONPATH=. $(PYTHON) -m facerec.run

test: $(VENV)/.installed-test
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) -m pytest

# The fuzz targets of tests/test_fuzz.py with many examples (make test runs them briefly).
fuzz: $(VENV)/.installed-test
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) FACEREC_FUZZ_PROFILE=long $(PYTHON) -m pytest -p no:warnings tests/test_fuzz.py

# /detect latency next to the original service's pipeline (not part of make test).
bench-latency: $(VENV)/.installed
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/latency.py

# Ten minutes of mixed load at saturation, bad uploads included (not part of make test).
load: $(VENV)/.installed
	PYTHONPATH=. FACEREC_SHARED=$(SHARED) $(PYTHON) bench/load.py

$(VENV)/.installed: requirements.txt scripts/install-dlib.sh
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	sh scripts/install-dlib.sh $(PYTHON)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

clean:
	rm -rf $(VENV)
