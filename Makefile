# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench serve clean blender browser

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

test: $(STAMP) lint
	$(BIN)/pytest

# The farm's real-renderer test needs Debian's Blender (3.4); installing it needs root.
blender:
	command -v blender >/dev/null || { apt-get update -qq && apt-get install -y -qq blender; }

# The web interface's tests drive Debian's Chromium through Playwright (the pip dev extra);
# Playwright's own browser download is not used. Installing it needs root.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

serve: $(STAMP)
	$(BIN)/bifrost serve

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
