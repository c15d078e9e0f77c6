# asu-builder — the two commands that matter: `make run` and `make test`.

CARGO        ?= cargo
# Installation layout (`make install`); packagers set PREFIX=/usr and DESTDIR.
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
SYSCONFDIR   ?= /etc
UNITDIR      ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
DOCDIR       ?= $(PREFIX)/share/doc/asu-builder
MANDIR       ?= $(PREFIX)/share/man
# The binary to install; the default is (re)built by `cargo build --release`.
BIN          ?= target/release/asu-builder
DEV_CONFIG   ?= etc/asu-builder.yaml
# The private Podman service `make run` starts for the development config.
DEV_PODMAN   ?= $(CURDIR)/data/podman
PODMAN_SH    := tests/podman/service.sh

.PHONY: all build run test soak lint unit bench bench-stats podman-install podman-up podman-down chromium-install \
	test-tools-install install uninstall clean

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
# test binary; `podman-install` makes sure Podman is there to start, and
# `chromium-install` the headless browser of tests/browser.rs. The fault
# suite (tests/faults_*.rs, tests/supervision.rs) is part of it; it runs as
# root like the Podman tier (the disk-full test mounts a tmpfs).
test: lint podman-install chromium-install test-tools-install
	$(CARGO) test --all-targets

chromium-install:
	bash tests/browser/chromium.sh install

# The OpenAPI validator (PyPI) and systemd-analyze (Debian's systemd) that
# tests/openapi.rs and tests/install.rs run.
test-tools-install:
	bash tests/tools/install.sh

# Binary, configuration (never overwriting one), systemd unit with its
# podman.socket drop-in, sysusers entry, man page and docs. Nothing is
# started or enabled: README, "Production", says what to run next.
install: $(if $(filter target/release/asu-builder,$(BIN)),build)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/asu-builder \
		$(DESTDIR)$(UNITDIR)/podman.socket.d $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/asu-builder
	test -e $(DESTDIR)$(SYSCONFDIR)/asu-builder/config.yaml || \
		install -m 0644 etc/config.yaml $(DESTDIR)$(SYSCONFDIR)/asu-builder/config.yaml
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/asu-builder/|$(SYSCONFDIR)/asu-builder/|g' \
		etc/asu-builder.service > $(DESTDIR)$(UNITDIR)/asu-builder.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/asu-builder.service
	install -m 0644 etc/podman-socket-asu-builder.conf $(DESTDIR)$(UNITDIR)/podman.socket.d/asu-builder.conf
	install -m 0644 etc/asu-builder.sysusers $(DESTDIR)$(SYSUSERSDIR)/asu-builder.conf
	$(BIN) manpage > $(DESTDIR)$(MANDIR)/man8/asu-builder.8
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/asu-builder.8
	install -m 0644 README.md ARCHITECTURE.md docs/compatibility.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 etc/config.yaml $(DESTDIR)$(DOCDIR)/config.yaml.example

# Everything `install` put there except the configuration and the state
# (/var/lib/asu-builder), which hold the operator's data.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/asu-builder $(DESTDIR)$(UNITDIR)/asu-builder.service \
		$(DESTDIR)$(UNITDIR)/podman.socket.d/asu-builder.conf \
		$(DESTDIR)$(SYSUSERSDIR)/asu-builder.conf $(DESTDIR)$(MANDIR)/man8/asu-builder.8
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(UNITDIR)/podman.socket.d 2>/dev/null

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

# Statistics endpoints over a year of seeded events (1 million by default;
# STATS_BENCH_EVENTS to change): seeding time and each endpoint's latency.
bench-stats:
	$(CARGO) test --release --test stats_bench -- --ignored --nocapture

clean:
	$(CARGO) clean
