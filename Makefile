# stopitd — the two commands of the quick start are `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
CONFIG  ?= config/stopitd.toml
# Debian packages the test suite and the benchmarks talk to (real peers, not mocks).
SYSTEM_PACKAGES := swaks dnsmasq-base postgresql postfix spamassassin valgrind

.PHONY: setup system-deps run test lint typecheck pytest goldens bench fuzz fuzz-atheris clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Installs the Debian packages above when one of their commands is missing (needs root).
system-deps:
	@missing=""; \
	command -v swaks >/dev/null || missing="$$missing swaks"; \
	command -v smtp-source >/dev/null || missing="$$missing postfix"; \
	command -v dnsmasq >/dev/null || missing="$$missing dnsmasq-base"; \
	command -v spamassassin >/dev/null || missing="$$missing spamassassin"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	{ command -v pg_config >/dev/null && test -x "$$(pg_config --bindir)/initdb"; } || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (install them: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

var:
	mkdir -p var

run: setup var
	$(BIN)/stopitd --config $(CONFIG) db upgrade
	$(BIN)/stopitd --config $(CONFIG) serve

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy src

# The suite runs in parallel (pytest-xdist): most tests wait on real daemons, servers and
# subprocesses, so a few workers per core keep both cores busy. PYTEST_JOBS=0 runs serially.
PYTEST_JOBS ?= 3
pytest: setup system-deps
	$(BIN)/pytest -n $(PYTEST_JOBS) --dist worksteal --durations=15

test: lint typecheck pytest

goldens: setup
	$(BIN)/python -m tests.goldens
	$(BIN)/python -m tests.analysis.test_hops_golden
	$(BIN)/python -m tests.analysis.test_authres

# Mutation fuzzing of the whole analysis (tests/fuzz.py): 0 unexpected exceptions expected;
# crashing inputs are saved to var/fuzz-crashes/ to become fixtures/fuzz/ regressions.
FUZZ_CASES ?= 100000
FUZZ_SEED  ?= 1
FUZZ_JOBS  ?= $(shell nproc 2>/dev/null || echo 1)
fuzz: setup
	$(BIN)/python -m tests.fuzz --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS) --save var/fuzz-crashes

# Coverage-guided fuzzing with atheris (optional extra): runs until a crash or for
# ATHERIS_SECONDS; crashing inputs land in var/atheris-crashes/.
ATHERIS_SECONDS ?= 600
fuzz-atheris: setup
	$(BIN)/pip install -q -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz_atheris -max_total_time=$(ATHERIS_SECONDS) -rss_limit_mb=4096 -timeout=60

bench: setup system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
