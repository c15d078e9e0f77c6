#!/usr/bin/env python3
"""Memory of process trees, from /proc, for `make bench`.

    procs.py snapshot ROLE=PID...          one JSON object on stdout
    procs.py watch OUT ROLE=PID...         sample every 20 ms until SIGTERM,
                                           then write to OUT (JSON) the largest
                                           RSS seen per process and the largest
                                           sum over the whole tree at one sample

Each ROLE=PID names a process; its descendants are included with the role
"ROLE child", or CHILD with ROLE/CHILD=PID (gunicorn's workers under the
master, rq's work horse under the worker). Per process: VmRSS (now) and VmHWM (the kernel's peak RSS since the
process started or since its peak was reset) in KiB, and the command line.
"""
import json
import os
import signal
import sys
import time


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            out["cmd"] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return out


def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command may contain spaces and parentheses: ppid follows the last ')'.
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(roles):
    """[(role, pid)] for every named process and its descendants."""
    kids = children_map()
    out = []
    for spec in roles:
        role, _, pid = spec.rpartition("=")
        role, _, child_role = role.partition("/")
        pid = int(pid)
        out.append((role, pid))
        stack = list(kids.get(pid, []))
        while stack:
            child = stack.pop()
            out.append((child_role or f"{role} child", child))
            stack.extend(kids.get(child, []))
    return out


def snapshot(roles):
    procs = []
    for role, pid in tree(roles):
        st = status(pid)
        if st is not None and "VmRSS" in st:
            procs.append({"role": role, "pid": pid, "rss_kib": st["VmRSS"], "hwm_kib": st["VmHWM"], "cmd": st["cmd"]})
    return {"processes": procs}


def watch(out_path, roles):
    peaks = {}
    tree_peak = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        total = 0
        for role, pid in tree(roles):
            st = status(pid)
            if st is None or "VmRSS" not in st:
                continue
            total += st["VmRSS"]
            seen = peaks.setdefault(pid, {"role": role, "pid": pid, "max_rss_kib": 0, "cmd": st["cmd"]})
            seen["max_rss_kib"] = max(seen["max_rss_kib"], st["VmRSS"], st.get("VmHWM", 0))
        tree_peak = max(tree_peak, total)
        time.sleep(0.02)
    with open(out_path, "w") as f:
        json.dump({"processes": list(peaks.values()), "tree_peak_kib": tree_peak}, f)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snapshot":
        print(json.dumps(snapshot(sys.argv[2:])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "watch":
        watch(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
