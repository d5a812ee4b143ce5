# The two commands of the README: `make run` and `make test`. Both install
# what is missing (scripts/install-deps.sh), then build.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
DATA_DIR ?= mailbox-data
# Cargo's outputs live outside the clone so a second clone builds fast; a
# cold cache only costs time.
CARGO_TARGET_DIR ?= $(HOME)/.cache/mailbox/cargo-target
PYTHON := .venv/bin/python
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all deps build run cluster test unit interop chaos chaos-short sim-long header sanitize clean bench

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
		-DMAILBOX_CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) >/dev/null
	@cmake --build $(BUILD_DIR)

run: build
	$(BUILD_DIR)/mailboxd --data-dir $(DATA_DIR)

# A 3-node cluster on loopback in the foreground; Ctrl-C stops it.
cluster: build
	./scripts/cluster.sh

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure

interop: build
	MAILBOX_BUILD_DIR=$(abspath $(BUILD_DIR)) $(PYTHON) -m pytest tests/interop -q

# Real processes in network namespaces under a nemesis, histories checked by
# Porcupine (tests/chaos, tools/checker; needs root). `make test` runs the
# regression tests and two short fixed-seed runs; `make chaos` runs long ones
# with fresh seeds (CHAOS_SECONDS each, printed seeds replay a schedule).
CHAOS_SECONDS ?= 300
chaos-short: build
	MAILBOX_BUILD_DIR=$(abspath $(BUILD_DIR)) $(PYTHON) -m pytest tests/chaos -q
	$(PYTHON) tests/chaos/chaos.py --build-dir $(BUILD_DIR) --nodes 3 --duration 45 --seed 101
	$(PYTHON) tests/chaos/chaos.py --build-dir $(BUILD_DIR) --nodes 5 --duration 45 --seed 202

chaos: build
	$(PYTHON) tests/chaos/chaos.py --build-dir $(BUILD_DIR) --nodes 3 --duration $(CHAOS_SECONDS)
	$(PYTHON) tests/chaos/chaos.py --build-dir $(BUILD_DIR) --nodes 5 --duration $(CHAOS_SECONDS)

test: unit interop chaos-short

# The deterministic simulation of the replication layer over many more seeds
# than `make test` (SIM_SEEDS, SIM_SECONDS of simulated time each).
SIM_SEEDS ?= 100000
SIM_SECONDS ?= 10
sim-long: build
	$(BUILD_DIR)/replication_sim --first 1000 --seeds $(SIM_SEEDS) --seconds $(SIM_SECONDS)

# mailbox beside NATS JetStream and RabbitMQ on this machine (docs/BENCHMARKS.md):
# installs the peers, then writes bench-results/results.json and chart.png.
# BENCH_DURATION_S / BENCH_WARMUP_S set the durations; BENCH_ARGS="--quick"
# or "--only mailbox" pass options to bench/suite.py.
bench: build
	@./bench/peers/install.sh
	BUILD_DIR=$(BUILD_DIR) $(PYTHON) bench/suite.py $(BENCH_ARGS)

# Regenerate the bridge's C header after changing bridge/src/lib.rs.
header:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) cargo run --release --locked --quiet \
		--manifest-path tools/header-check/Cargo.toml -- bridge --write

# Unit tests under ASan+UBSan, then TSan.
sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAILBOX_SANITIZE=address \
		-DMAILBOX_CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) >/dev/null && cmake --build build-asan
	ctest --test-dir build-asan --output-on-failure
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMAILBOX_SANITIZE=thread \
		-DMAILBOX_CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) >/dev/null && cmake --build build-tsan
	ctest --test-dir build-tsan --output-on-failure

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan
