# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench serve clean tools iac-tools image lock

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
# The sources are compiled first: where Python is told not to write bytecode
# (PYTHONDONTWRITEBYTECODE, as on these machines), each of the suite's ~250 Python processes
# would otherwise compile Bifrost again (0.4-0.6 s of CPU each).
test: $(STAMP) lint
	$(BIN)/python -m compileall -q bifrost_core api cli flows tasks deployments clients/python tests
	$(BIN)/pytest -n 3 --dist loadgroup

# Debian's programs that tests drive, installed when missing (needs root): Blender (3.4) for
# the farm's real-renderer test, Prometheus and promtool for the alert rules in infra/, HAProxy
# for `bifrost gateway`, ffmpeg and ffprobe for review media (drawtext with freetype, libx264;
# EXR and OCIO come from the OpenImageIO wheel), Chromium for the web interface's tests
# (Playwright, from the pip dev extra, drives it: its own browser download is not used),
# pgBackRest for the database's backups and the restore drill (tests/infra),
# rclone for bench/archive.py's comparison.
# For infra/: podman, runc and mmdebstrap build and run the container image (`make image`;
# crun cannot run on these machines' hybrid cgroups), docker-compose validates the studio's
# compose file (`docker-compose config`, no daemon needed), psql applies the database roles.
DEBIAN_TOOLS := blender prometheus haproxy ffmpeg chromium pgbackrest rclone podman runc mmdebstrap docker-compose postgresql-client
tools: iac-tools
	@missing=$$(for p in $(DEBIAN_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi
	@# A failed build (a registry unreachable for a moment) fails tests/infra/test_container.py,
	@# with its reason, instead of stopping every other test from running.
	-$(MAKE) image

# checkov (tests/infra/test_iac.py) in a venv of its own: its pins conflict with Bifrost's
# (boto3, packaging). Installed from infra/cloud/checkov.lock, every package pinned.
IAC_VENV := .venv-iac
$(IAC_VENV)/.installed: infra/cloud/checkov.lock
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/pip install --quiet --no-deps -r infra/cloud/checkov.lock
	touch $@
iac-tools: $(IAC_VENV)/.installed

# The image of infra/containers/Dockerfile as localhost/bifrost:latest (its base made from
# Debian's packages first, when missing). Unchanged layers come from podman's cache.
image:
	infra/containers/build.sh localhost/bifrost:latest

# Re-pin the image's dependencies (infra/containers/requirements.lock) from the venv.
lock: $(STAMP)
	$(BIN)/python infra/containers/lock.py

serve: $(STAMP)
	$(BIN)/bifrost serve

clean:
	rm -rf $(VENV) $(IAC_VENV) .pytest_cache .ruff_cache
