# Makefile of the fake ImageBuilder archive that `make bench` serves to the
# reference server (asu 0.7.x), which unpacks the archive and runs the
# host's GNU make in it. Every goal goes to the fake make script of the
# Podman tier (tests/podman/fakeib/make, copied to .fakeib/make), so both
# servers build with the same fake. Variables given on the command line
# (PROFILE, PACKAGES, BIN_DIR, ...) reach the script through the
# environment, as GNU make exports them.
FAKEIB_DIR := $(CURDIR)/.fakeib
export FAKEIB_DIR

# Asked for by `make val.KERNEL_BUILD_DIR`; the server removes its tmp/.
KERNEL_BUILD_DIR := $(CURDIR)/build_dir/target-testarch_musl/linux-testtarget_testsubtarget

.PHONY: info manifest image help clean
info manifest image help clean:
	@sh $(FAKEIB_DIR)/make $@

val.%:
	@echo '$($*)'
