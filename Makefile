# asu-builder — the two commands that matter: `make run` and `make test`.

CARGO        ?= cargo
PREFIX       ?= /usr/local
DEV_CONFIG   ?= etc/asu-builder.yaml
# The private Podman service `make run` starts for the development config.
DEV_PODMAN   ?= $(CURDIR)/data/podman
PODMAN_SH    := tests/podman/service.sh

.PHONY: all build run test soak lint unit bench podman-install podman-up podman-down clean

all: build

build:
	$(CARGO) build --release

# Start a private Podman API service unless something already answers on the
# configured socket, then run the daemon with the development config.
run: build podman-up
	./target/release/asu-builder --config $(DEV_CONFIG)

podman-install:
	bash $(PODMAN_SH) install

podman-up: podman-install
	bash $(PODMAN_SH) start $(DEV_PODMAN)

podman-down:
	bash $(PODMAN_SH) stop $(DEV_PODMAN)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Everything CI runs. The Podman tier starts its own private service per
# test binary; `podman-install` makes sure Podman is there to start. The
# fault suite (tests/faults_*.rs, tests/supervision.rs) is part of it; it
# runs as root like the Podman tier (the disk-full test mounts a tmpfs).
test: lint podman-install
	$(CARGO) test --all-targets

unit:
	$(CARGO) test --lib

# The long fault runs: ten minutes of 200 clients polling while builds run,
# and forty kill -9 rounds (80 builds). Same assertions as in `make test`;
# the figures (latencies, RSS, kill points, outcomes) are printed.
soak: podman-install
	FAULT_LOAD_SECONDS=600 FAULT_CRASH_ROUNDS=40 \
		$(CARGO) test --test faults_load --test faults_crash -- --nocapture --test-threads=1

# Figures, not assertions, written to BENCHMARKS.md: asu-builder, the bare
# stack and the reference server side by side (tests/bench/README.md).
bench:
	bash tests/bench/bench.sh

clean:
	$(CARGO) clean
