# The two commands of the README: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
PIP_FLAGS ?= -q

.PHONY: install demo test test-fast bench

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -e '.[test]'

# Broker + worker + demo feed; prints profiles as they arrive (Ctrl-C to stop).
demo: install
	$(PYTHON) -m stream demo $(DEMO_ARGS)

# Every test, including the slow end-to-end and fault-injection ones on a real broker.
test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Unit tests only (no broker), for quick iterations.
test-fast: install
	$(PYTHON) -m pytest -m "not integration" $(PYTEST_ARGS)

bench: install
	$(PYTHON) -m bench $(BENCH_ARGS)
