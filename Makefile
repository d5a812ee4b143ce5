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

.PHONY: deb all deps build run cluster run-secure cluster-secure test unit interop chaos chaos-short chaos-install sim-long header \
	sanitize clean bench fuzz fuzz-short fuzz-build

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

# The same in secure mode (docs/SECURITY.md): a test CA, node certificates,
# token keys and a client's settings are made once in SECURE_DATA_DIR;
# then `source $(SECURE_DATA_DIR)/client.env` and use build/mailbox.
# SECURE_SCHEME=quic runs them over QUIC instead of TLS over TCP
# (docs/SECURITY.md, "Known defect in Zenoh's TLS link").
SECURE_DATA_DIR ?= secure-data
SECURE_SCHEME ?= tls
run-secure: build
	SECURE_SCHEME=$(SECURE_SCHEME) BUILD_DIR=$(BUILD_DIR) ./scripts/secure-setup.sh $(SECURE_DATA_DIR) 1
	$(BUILD_DIR)/mailboxd --secure-dir $(SECURE_DATA_DIR)/pki/node1 --listen $(SECURE_SCHEME)/127.0.0.1:7447 \
		--data-dir $(SECURE_DATA_DIR)/node1

cluster-secure: build
	SECURE_SCHEME=$(SECURE_SCHEME) BUILD_DIR=$(BUILD_DIR) ./scripts/secure-setup.sh $(SECURE_DATA_DIR) 3
	SECURE_DIR=$(SECURE_DATA_DIR)/pki SECURE_SCHEME=$(SECURE_SCHEME) DATA_DIR=$(SECURE_DATA_DIR)/cluster \
		BUILD_DIR=$(BUILD_DIR) ./scripts/cluster.sh

# The Debian package (mailboxd, mailbox, systemd unit, default config, man
# pages) in DEB_DIR; tests/interop/test_packaging.py checks and runs it.
DEB_DIR ?= $(BUILD_DIR)/deb
deb: build
	./scripts/build-deb.sh $(BUILD_DIR) $(DEB_DIR)

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

# Snapshot installs at scale (issue 12): a follower held down while the
# others write, then let back, 20 times over a 200 MiB state, killed -9
# mid-install every other round, and a new node joining (`make test` runs
# the same test at 64 MiB and 3 rounds).
INSTALL_MIB ?= 200
INSTALL_ROUNDS ?= 20
chaos-install: build
	MAILBOX_BUILD_DIR=$(abspath $(BUILD_DIR)) MAILBOX_INSTALL_MIB=$(INSTALL_MIB) \
		MAILBOX_INSTALL_ROUNDS=$(INSTALL_ROUNDS) $(PYTHON) -m pytest tests/interop/test_snapshot_install.py -q -s

test: unit interop chaos-short fuzz-short

# libFuzzer targets (tests/fuzz: the selector and parameter parser, the
# attachment parser, the token parser), built by clang with ASan+UBSan in
# $(FUZZ_BUILD_DIR). `make fuzz` runs each for FUZZ_SECONDS; `make test`
# runs each for FUZZ_SHORT_SECONDS. Results: docs/RELIABILITY.md.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 5
fuzz-build: deps
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DMAILBOX_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD_DIR)

fuzz: fuzz-build
	./scripts/fuzz.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS)

fuzz-short: fuzz-build
	./scripts/fuzz.sh $(FUZZ_BUILD_DIR) $(FUZZ_SHORT_SECONDS)

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
# BENCH_REPEAT=3: three interleaved rounds, medians and spread (bench/suite.py).
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
	rm -rf $(BUILD_DIR) build-asan build-tsan $(FUZZ_BUILD_DIR)
