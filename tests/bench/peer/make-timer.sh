#!/bin/sh
# `make` for the reference server's rq worker during `make bench` (first on
# its PATH): runs the real make and appends "start_ns end_ns exit_code goal"
# to $MAKE_TIMER_LOG, so the bench can tell the service's own time per build
# from the time spent inside the (fake) ImageBuilder.
start=$(date +%s%N)
"$REAL_MAKE" "$@"
rc=$?
echo "$start $(date +%s%N) $rc $1" >>"$MAKE_TIMER_LOG"
exit $rc
