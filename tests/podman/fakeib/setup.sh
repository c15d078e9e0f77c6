#!/bin/sh
# Fake snapshot setup: a real snapshot ImageBuilder container downloads and
# unpacks the ImageBuilder for $TARGET here. We only check the inputs the
# server must pass and leave a marker.
if [ -z "$TARGET" ]; then
	echo "TARGET is not set" >&2
	exit 1
fi
echo "Setting up ImageBuilder for $TARGET (${VERSION_PATH:-snapshots})"
echo "TARGET=$TARGET VERSION_PATH=$VERSION_PATH" > /builder/.fakeib/setup-done
exit 0
