# jafflr: two commands to know.
#   make run    the whole machine, simulated, with both services and the panel
#   make test   the default test run
# Both create the virtual environment (.venv) when it is missing or out of date.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SPEED ?= 1

.PHONY: run test test-all campaign test-systemd test-fleet test-aarch64 check check-safety sim clean bench bench-pi drawings

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "jafflr needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.txt bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

# ansible-core and ansible-lint, for the deploy tests (and for deploying from here).
$(VENV)/.deploy: $(VENV)/.test deploy/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r deploy/requirements.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m api.launcher --speed $(SPEED)

test: $(VENV)/.deploy
	$(PY) -m pytest -q

# The long parts of the reliability campaign (tests/campaign, marked slow): every fault
# at every step, many kill -9s, 50 clients, long fuzzing. About 15 minutes on a quiet
# two-core machine; CAMPAIGN_SCALE=2 doubles the counts. .ci/run runs it after make test.
# Figures: test-artifacts/campaign/*.json.
campaign: $(VENV)/.deploy
	$(PY) -m pytest -q -m slow tests/campaign

# Everything CI runs: the default run, the fleet steps, then the long campaign.
test-all: test test-fleet campaign

# Only the proof on real systemd (root): steps 1-8 (part of make test too) and the fleet
# steps 9-13 (test-fleet). The aarch64 proof skips unless asked for (test-aarch64).
test-systemd: $(VENV)/.deploy
	JAFFLR_FLEET=1 $(PY) -m pytest -q -m systemd tests/systemd

# The fleet deploys on real systemd (tests/systemd/test_fleet.py, steps 9-13: -l panel-only,
# an interrupted deploy, a deploy during a well-done toastie, a migration rollback of both
# stores, a failing canary), on a host of their own. Root; about 9 minutes, so not in
# make test: .ci/run runs it after make test.
test-fleet: $(VENV)/.deploy
	JAFFLR_FLEET=1 $(PY) -m pytest -q -m systemd tests/systemd/test_fleet.py

# The aarch64 proof: an arm64 bookworm tree under qemu-user emulation (binfmt), the release
# installed from the aarch64 wheelhouse and served; and the same playbook deploying to it
# booted by systemd. Root; slow (an emulated CPU: about 8 minutes on a loaded two-core
# machine), so neither in make test nor in .ci/run (it does not fit CI's 45 minutes).
test-aarch64: $(VENV)/.deploy
	JAFFLR_AARCH64=1 $(PY) -m pytest -q -m systemd tests/systemd/test_aarch64.py

check: $(VENV)/.runtime
	$(PY) -m hardware.check

# Prove the safety chain on the machine (a person presses the e-stop, opens the lid...).
check-safety: $(VENV)/.runtime
	$(PY) -m hardware.check --safety

# The harness and safety-chain drawings, from hardware/board.py (WireViz needs graphviz's
# `dot`). Commit what changes: tests/hardware/test_drawings.py fails when they are stale.
drawings: $(VENV)/.test
	$(PY) -m hardware.drawings --out docs/drawings

clean:
	rm -rf $(VENV) .run .pytest_cache

# Every benchmark; prints a table and writes bench/results/all.json and PNG plots beside it
# (matplotlib, from bench/requirements.txt via requirements-test.txt). Needs a quiet machine.
bench: $(VENV)/.deploy
	$(PY) -m bench

# The figures on a Raspberry Pi's CPU budget (root: cgroup v1 CPU quotas), Pi 4 and Pi 5
# profiles calibrated first; bench/results/pi-*.json and plots. PROFILE=pi4 runs one.
PROFILE ?= pi4 pi5
bench-pi: $(VENV)/.deploy
	$(PY) -m bench.pi $(foreach p,$(PROFILE),--profile $(p))
