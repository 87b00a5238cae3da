# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench serve clean tools

# The Python client (clients/python) is a distribution of its own; the tests use it.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bifrost demo

lint: $(STAMP)
	$(BIN)/ruff check .

# Three processes (pytest-xdist): most of the suite's time is spent waiting on servers,
# workers and subprocesses, so three share two cores well; the tests of one shared server
# stay in one process (`--dist loadgroup`, groups set in tests/conftest.py).
test: $(STAMP) lint
	$(BIN)/pytest -n 3 --dist loadgroup

# Debian's programs that tests drive, installed when missing (needs root): Blender (3.4) for
# the farm's real-renderer test, Prometheus and promtool for the alert rules in infra/, HAProxy
# for `bifrost gateway`, ffmpeg and ffprobe for review media (drawtext with freetype, libx264;
# EXR and OCIO come from the OpenImageIO wheel), Chromium for the web interface's tests
# (Playwright, from the pip dev extra, drives it: its own browser download is not used),
# pgBackRest for the database's backups and the restore drill (tests/infra),
# rclone for bench/archive.py's comparison.
DEBIAN_TOOLS := blender prometheus haproxy ffmpeg chromium pgbackrest rclone
tools:
	@missing=$$(for p in $(DEBIAN_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi

serve: $(STAMP)
	$(BIN)/bifrost serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
