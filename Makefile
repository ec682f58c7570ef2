# TL Studio: `make run` starts the app, `make test` runs the whole suite (CI calls it),
# `make screenshots` regenerates docs/screenshots on purpose (a test run never touches them).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# 127.0.0.1: only this computer can open the app. ADDRESS=0.0.0.0 shares it with the network
# (and switches off "A folder on this computer": strangers must never read this machine's folders).
ADDRESS ?= 127.0.0.1

.PHONY: run test screenshots bench bench-parts chromium redis clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The browser test needs Debian's Chromium (never `playwright install`: it downloads).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "note: /usr/bin/chromium is missing (sudo apt-get install chromium); the browser test will be skipped"; fi; \
	fi

# The worker-pool tests start Debian's redis-server on a free port (skipped with a note without it).
redis:
	@if [ ! -x /usr/bin/redis-server ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q redis-server; \
		else echo "note: /usr/bin/redis-server is missing (sudo apt-get install redis-server); the worker-pool tests will be skipped"; fi; \
	fi

run: $(VENV)/.runtime
	@if [ "$(ADDRESS)" = "127.0.0.1" ]; then \
		echo "TL Studio listens on 127.0.0.1:$(PORT): only this computer can open it (to share it on your network: make run ADDRESS=0.0.0.0)."; \
	else \
		echo "TL Studio listens on $(ADDRESS):$(PORT): other computers on your network can open it, so the 'A folder on this computer' tab is off."; \
	fi
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.address $(ADDRESS)

# The tree after a test run is the tree before it: git's view of it is compared, so a test that
# writes into a tracked file (or leaves a new unignored one) fails `make test`.
test: $(VENV)/.dev chromium redis
	@mkdir -p build && (git status --porcelain 2>/dev/null || true) > build/git-status.before
	$(BIN)/python -m pytest -q tests
	@(git status --porcelain 2>/dev/null || true) | diff -u build/git-status.before - \
		|| { echo "make test changed the files listed above (tests write under build/ or a temp folder)"; exit 1; }

# The browser walk-through's screenshots (build/screenshots/) copied over docs/screenshots/.
screenshots: $(VENV)/.dev chromium
	rm -f build/screenshots/*.png
	$(BIN)/python -m pytest -q tests/test_browser.py
	cp build/screenshots/*.png docs/screenshots/

# issue 21's targets as ratios measured side by side, cold and warm, and issue 20's fault campaign
# (bench/targets.py, ~1.5 h on 2 cores; ARGS="--only faults" for the campaign alone);
# bench-parts: the older per-part benchmarks (python -m bench)
bench: $(VENV)/.dev
	$(BIN)/python -m bench.targets $(ARGS)

bench-parts: $(VENV)/.dev
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build
