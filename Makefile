# Two commands: `make run` starts the bot and its local worker, `make test` runs the tests.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test install check worker bench pool clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(PY) -m bot

test: $(STAMP)
	$(PY) -m pytest -q

# What the configured model preset needs, and whether it is on disk.
check: $(STAMP)
	$(PY) -m engine.worker --check

# A GPU worker for another machine: make worker QUEUE=redis://HOST:6379/0
worker: $(STAMP)
	$(PY) -m engine.worker $(if $(QUEUE),--queue $(QUEUE))

# Build or grow the /rank pool by hand (the bot's workers draw it; --inline: a worker of its own).
pool: $(STAMP)
	$(PY) -m engine.rankpool build --per-prompt 6

bench: $(STAMP)
	$(PY) bench/bot_overhead.py
	$(PY) bench/community_load.py --quick
	$(PY) bench/queue_bench.py --quick
	$(PY) bench/taste_bench.py --quick
	$(PY) bench/steer_bench.py
	$(PY) bench/nsfw_bench.py --runs 3
	$(PY) bench/tools_bench.py
	$(PY) bench/web_rank_bench.py
	$(PY) bench/video_bench.py --repeat 1
	$(PY) bench/web_bytes.py
	$(PY) bench/db_scale.py --scale 0.05
	$(PY) bench/gpu_check.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
