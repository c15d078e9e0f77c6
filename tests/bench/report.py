#!/usr/bin/env python3
"""Turns the JSON lines `make bench` collected into BENCHMARKS.md.

    report.py RESULTS.jsonl OUT.md

Pure formatting: every number comes from the run that wrote RESULTS.
"""
import json
import statistics
import sys
from collections import defaultdict

CASES = [
    ("stats", "Status GET", "GET /api/v1/stats", 200),
    ("build_get", "Finished-build GET", "GET /api/v1/build/<hash> of a finished build", 200),
    ("cache_hit_post", "Cache-hit POST", "POST /api/v1/build of a finished build", 200),
    ("bad_post", "Validation-error POST", "POST /api/v1/build with an unknown version", 400),
    ("overview", "overview.json", "GET /json/v1/overview.json", 200),
]
# asu-builder's req/s as a share of the bare stack's, at 50 connections.
TARGETS = {"stats": 80, "build_get": 70, "cache_hit_post": 50, "bad_post": 50, "overview": 50}
SERVER_NAMES = {"asu-builder": "asu-builder", "bare": "bare stack", "peer": "peer"}


def load(path):
    data = {
        "facts": {},
        "starts": defaultdict(list),
        "rss": {},
        "builds": {},
        "details": {},
        "loads": [],
        "big": None,
        "peer_build_rss": None,
    }
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            t = r["type"]
            if t == "fact":
                data["facts"][r["key"]] = r["value"]
            elif t == "start":
                data["starts"][r["server"]].append((r["path"], r["ms"]))
            elif t == "rss":
                data["rss"][(r["phase"], r["server"])] = r["processes"]
            elif t == "build":
                data["builds"][(r["server"], r["label"])] = r
            elif t == "build_detail":
                data["details"][(r["server"], r["hash"])] = r
            elif t == "load":
                data["loads"].append(r)
            elif t == "big":
                data["big"] = r
            elif t == "peer_build_rss":
                data["peer_build_rss"] = r["watch"]
    return data


def num(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def counts(d):
    if not d:
        return "0"
    return ", ".join(f"{k}: {num(v)}" for k, v in sorted(d.items()))


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


def find_load(loads, server, case, conns):
    for r in loads:
        if r["server"] == server and r["case"] == case and r["conns"] == conns:
            return r["result"]
    return None


def ratio(a, b):
    if a is None or b is None or not b["ok_per_s"]:
        return None
    return a["ok_per_s"] / b["ok_per_s"]


def section_machine(data, out):
    f = data["facts"]
    peer = f.get("peer_packages", "").strip()
    rows = [
        ("date (UTC)", f.get("date")),
        ("CPU", f"{f.get('cpu')}, {f.get('cores')} cores (nproc)"),
        ("memory", f.get("memory")),
        ("kernel / OS", f"{f.get('kernel')} / {f.get('os')}"),
        ("load average at start", f.get("loadavg")),
        ("rustc", f.get("rustc")),
        ("asu-builder", f"commit {f.get('commit')}, release build"),
        ("tiny_http", f.get("tiny_http")),
        ("podman (asu-builder's build runtime)", f.get("podman")),
        (
            "peer",
            f"{peer.replace(' ', ', ')} on {f.get('peer_python')}; redis-server {f.get('redis_server')}; "
            f"gunicorn with {f.get('peer_workers')} sync workers"
            if peer
            else f"did not run: {f.get('peer_error') or '?'}",
        ),
        ("load generator", "tests/bench/loadgen.rs (keep-alive, one thread per connection, closed loop)"),
        ("durations", f.get("settings")),
    ]
    out.append("## Machine and versions\n")
    out.append("| | |\n|---|---|")
    for k, v in rows:
        out.append(f"| {k} | {v} |")
    out.append("")


def section_method(data, out):
    out.append("## How to read the tables\n")
    out.append(
        "- **ok/s** counts only responses with the expected status (200, or 400 for the "
        "validation error), divided by the time from the end of the warm-up to the last "
        "answer. Every other status is listed under *other statuses* and socket errors "
        "(refused, reset, timeout, malformed) under *socket errors*: a 503 is not a served request.\n"
        "- **p50 / p99** (ms): from writing a request to reading the last byte of its "
        "answer, over the expected-status responses only. The generator is closed-loop: "
        "each connection sends its next request when the previous answer has arrived, so "
        "these are latencies at the throughput shown, without coordinated-omission correction.\n"
        "- **% of bare**: asu-builder's ok/s over the bare stack's at the same connection "
        "count. The bare stack (tests/bench/bare_stack.rs) is the ceiling of the design: a "
        "tiny_http accept thread, a crossbeam channel, 4 handler threads, one prepared SQLite "
        "query answering a small stats JSON, built from the same crates.\n"
        "- **closed by server**: answers after which the server closed the connection; the "
        "generator reconnects, as any client must. gunicorn's sync workers (the peer) close "
        "after every response.\n"
        "- All servers run at the same time on 127.0.0.1, and each cell runs its servers "
        "back to back, so they share the machine's noise. The load generator runs on the "
        "same cores as the server it measures."
    )
    out.append("")


def load_row(conns, label, r, extra):
    if r is None:
        return None
    lat = r["latency_ms"]
    return (
        f"| {conns} | {label} | {num(r['ok_per_s'])} | {num(lat['p50'], 2)} | {num(lat['p99'], 2)} "
        f"| {counts(r['other_statuses'])} | {counts(r['socket_errors'])} | {num(r['server_closes'])} | {extra} |"
    )


def section_http(data, out):
    loads = data["loads"]
    f = data["facts"]
    conns_all = sorted({r["conns"] for r in loads})
    out.append("## HTTP throughput and latency\n")
    for case, title, what, status in CASES:
        out.append(f"### {title}: {what} → {status}\n")
        out.append(
            "| connections | server | ok/s | p50 ms | p99 ms | other statuses | socket errors "
            "| closed by server | ratio |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for c in conns_all:
            bare = find_load(loads, "bare", "stats", c)
            ours = find_load(loads, "asu-builder", case, c)
            peer = find_load(loads, "peer", case, c)
            if case == "stats":
                row = load_row(c, "bare stack", bare, "")
                if row:
                    out.append(row)
            extra = []
            if ratio(ours, bare) is not None:
                extra.append(f"{ratio(ours, bare) * 100:.0f} % of bare")
            if ratio(ours, peer) is not None:
                extra.append(f"{ratio(ours, peer):.1f}× peer")
            row = load_row(c, "asu-builder", ours, ", ".join(extra))
            if row:
                out.append(row)
            row = load_row(c, "peer", peer, "")
            if row:
                out.append(row)
        if case == "stats" and f.get("peer_stats_status"):
            out.append(
                f"\nThe peer has no `/api/v1/stats` (asu 0.7.x predates it): it answers "
                f"{f['peer_stats_status']}, so this path has no peer row."
            )
        out.append("")


def section_targets(data, out):
    loads = data["loads"]
    out.append("## Targets: asu-builder as a share of the bare stack, 50 connections\n")
    out.append("| path | asu-builder ok/s | bare stack ok/s | share | target | met |")
    out.append("|---|---|---|---|---|---|")
    bare = find_load(loads, "bare", "stats", 50)
    for case, title, _what, _status in CASES:
        ours = find_load(loads, "asu-builder", case, 50)
        share = ratio(ours, bare)
        if share is None:
            continue
        met = "yes" if share * 100 >= TARGETS[case] else "**no**"
        out.append(
            f"| {title} | {num(ours['ok_per_s'])} | {num(bare['ok_per_s'])} | {share * 100:.0f} % "
            f"| ≥ {TARGETS[case]} % | {met} |"
        )
    out.append("")


def section_peer_ratio(data, out):
    loads = data["loads"]
    rows = []
    for case, title, _what, _status in CASES:
        for c in sorted({r["conns"] for r in loads}):
            ours, peer = find_load(loads, "asu-builder", case, c), find_load(loads, "peer", case, c)
            if ours is None or peer is None:
                continue
            rows.append(
                f"| {title} | {c} | {num(ours['ok_per_s'])} | {num(peer['ok_per_s'])} "
                f"| {ratio(ours, peer):.1f}× | {num(ours['latency_ms']['p99'], 2)} | {num(peer['latency_ms']['p99'], 2)} |"
            )
    if not rows:
        return
    out.append("## asu-builder ÷ peer\n")
    out.append("| path | connections | asu-builder ok/s | peer ok/s | ok/s ratio | asu-builder p99 ms | peer p99 ms |")
    out.append("|---|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")


def section_start(data, out):
    out.append("## Cold start to the first 200\n")
    out.append(
        "From exec to the first 200 answer, polled every millisecond over loopback "
        "(includes up to ~2 ms of polling and process-launch overhead).\n"
    )
    out.append("| server | what starts | polled path | median ms | all runs (ms) |")
    out.append("|---|---|---|---|---|")
    what = {
        "asu-builder": "the daemon (Podman already running)",
        "peer": "gunicorn, master and workers; the first worker up answers (redis-server and the rq worker already running)",
    }
    for server, runs in data["starts"].items():
        ms = [m for _, m in runs]
        out.append(
            f"| {SERVER_NAMES[server]} | {what.get(server, '')} | `{runs[0][0]}` | {statistics.median(ms):.1f} "
            f"| {', '.join(f'{m:.1f}' for m in ms)} |"
        )
    out.append("")


def section_rss(data, out):
    out.append("## Memory: RSS of every process\n")
    conns = " and ".join(data["facts"].get("connections", "50 200").split())
    big = any(phase == "peak_big" for phase, _ in data["rss"])
    out.append(
        "*idle*: VmRSS after start-up and 2 s of quiet, before any request. *peak*: VmHWM "
        f"(the kernel's high-water mark) after the builds and the HTTP load at {conns} "
        "connections, which every server got"
        + (
            "; *peak, big*: after the extra connection counts only asu-builder and the bare "
            "stack run (tiny_http gives each connection a thread, whose stack counts here)"
            if big
            else ""
        )
        + ". Forked processes share pages, so a sum over processes overstates the memory used.\n"
    )
    if big:
        out.append("| server | process | pid | idle RSS MiB | peak RSS MiB | peak, big MiB |")
        out.append("|---|---|---|---|---|---|")
    else:
        out.append("| server | process | pid | idle RSS MiB | peak RSS MiB |")
        out.append("|---|---|---|---|---|")
    tail = " – |" if big else ""
    label = {
        "asu-builder": "asu-builder",
        "podman": "podman (asu-builder's runtime)",
        "bare": "bare stack",
        "peer": "peer",
    }
    for server in ("asu-builder", "podman", "bare", "peer"):
        idle = data["rss"].get(("idle", server))
        if idle is None:
            continue
        peak = {p["pid"]: p for p in data["rss"].get(("peak", server), [])}
        peak_big = {p["pid"]: p for p in data["rss"].get(("peak_big", server), [])}
        total_idle = 0
        total_peak = 0 if peak else None
        for p in idle:
            pk = peak.get(p["pid"], {}).get("hwm_kib")
            total_idle += p["rss_kib"]
            if total_peak is not None:
                total_peak += pk or 0
            extra = ""
            if big:
                extra = f" {mib(peak_big.get(p['pid'], {}).get('hwm_kib')) if server != 'peer' else '–'} |"
            out.append(f"| {label[server]} | {p['role']} | {p['pid']} | {mib(p['rss_kib'])} | {mib(pk)} |{extra}")
        watch = data["peer_build_rss"] if server == "peer" else None
        if watch:
            # The work horse is a fork of the rq worker (same command line);
            # the rest are make and the fake ImageBuilder's shell processes.
            horses = [p for p in watch["processes"] if p["role"] != "rq worker" and "rq worker" in p["cmd"]]
            others = [p for p in watch["processes"] if p["role"] != "rq worker" and "rq worker" not in p["cmd"]]
            if horses:
                top = max(horses, key=lambda p: p["max_rss_kib"])
                out.append(
                    f"| peer | rq work horse (forked per job; largest of {len(horses)}, sampled "
                    f"every 20 ms during the builds) | {top['pid']} | – | {mib(top['max_rss_kib'])} |{tail}"
                )
            if others:
                top = max(others, key=lambda p: p["max_rss_kib"])
                out.append(
                    f"| peer | make and the ImageBuilder's processes under it (largest of "
                    f"{len(others)}: `{top['cmd'].split(' ')[0].rsplit('/', 1)[-1]}`) | {top['pid']} | – "
                    f"| {mib(top['max_rss_kib'])} |{tail}"
                )
            out.append(
                f"| peer | rq worker's whole tree during the builds (sum at one sample) | | – "
                f"| {mib(watch['tree_peak_kib'])} |{tail}"
            )
        if len(idle) > 1:
            out.append(f"| {label[server]} | **sum** | | {mib(total_idle)} | {mib(total_peak)} |{tail}")
    out.append("")


def section_builds(data, out):
    b, d = data["builds"], data["details"]
    if not b:
        return
    out.append("## Builds\n")
    out.append(
        "Two builds per server with an idle queue, the same requests to both: *first* "
        "(`vim`) and *second* (`vim dropbear`). asu-builder runs the fake ImageBuilder image "
        "in a private Podman; the peer (asu 0.7.x runs no containers) downloads the same "
        "fake ImageBuilder as a signed archive from the fake upstream on its first build, "
        "unpacks it and runs `make` on the host. *In make*: for asu-builder the `podman exec` "
        "of each `make` step, for the peer each `make` subprocess (timed by a PATH shim). "
        "*Own time*: the rest of the build, the service's overhead.\n"
    )
    out.append("| | asu-builder | peer |")
    out.append("|---|---|---|")

    def cell(server, label, key, digits=1):
        build = b.get((server, label))
        if build is None:
            return "–"
        if key == "post_to_200_ms":
            return f"{num(build[key], digits)} ms"
        det = d.get((server, build["hash"]))
        return "–" if det is None else f"{num(det[key], digits)} ms"

    for label in ("first", "second"):
        out.append(f"| {label} build: POST → 200 | {cell('asu-builder', label, 'post_to_200_ms')} | {cell('peer', label, 'post_to_200_ms')} |")
        out.append(
            f"| {label} build: enqueue → container start (asu-builder) / job start (peer) "
            f"| {cell('asu-builder', label, 'enqueue_to_start_ms')} | {cell('peer', label, 'enqueue_to_start_ms')} |"
        )
        out.append(f"| {label} build: in make | {cell('asu-builder', label, 'make_ms')} | {cell('peer', label, 'make_ms')} |")
        out.append(
            f"| {label} build: **own time** (outside make) | {cell('asu-builder', label, 'overhead_ms')} "
            f"| {cell('peer', label, 'overhead_ms')} |"
        )
    out.append("")
    for server in ("asu-builder", "peer"):
        for label in ("first", "second"):
            build = b.get((server, label))
            det = build and d.get((server, build["hash"]))
            if det:
                out.append(f"- {SERVER_NAMES[server]}, {label} build steps: `{det['steps']}`")
    out.append("")
    big = data["big"]
    if big:
        out.append("### A 256 MiB image streaming into asu-builder's store\n")
        out.append(
            f"RSS before {mib(big['before_kib'])} MiB, peak during the build {mib(big['peak_kib'])} MiB "
            f"(+{mib(big['peak_kib'] - big['before_kib'])} MiB) for an image of "
            f"{big['image_bytes'] / 1048576:.0f} MiB. Steps: `{big['timings']}`. "
            "(The peer's `make` writes images straight into its store, so it has no such step.)\n"
        )


def section_peer(data, out):
    f = data["facts"]
    out.append("## The peer\n")
    if f.get("peer_error"):
        out.append(f"The peer did not run in this run: {f['peer_error']}\n")
        return
    out.append(
        f"The Python reference server from PyPI, `{f.get('peer_packages', '').split(' ')[0]}` "
        "(pip install 'asu>=0.7,<0.8': the newest 0.7.x), installed by `make bench` in a "
        "virtualenv under target/bench/, with Debian's redis-server and one `rq worker`. "
        f"It runs as its container image does, `gunicorn 'asu.asu:create_app()'`, with "
        f"{f.get('peer_workers')} sync workers (gunicorn's advice, 2 × cores + 1; its default is 1). "
        "Its metadata comes from `flask janitor update` against the same fake upstream "
        "as asu-builder's (a static server over tests/fixtures/upstream, which also answers "
        "the `targets?json-targets` listing the janitor asks for).\n\n"
        "Nothing is seeded by hand: asu 0.7.x builds without containers, by downloading "
        "the ImageBuilder archive named in the target's `sha256sums`, checking that file's "
        "usign signature against the branch key, unpacking it and running `make` on the "
        "host. `make bench` serves it the Podman tier's fake ImageBuilder packed as such an "
        "archive (signed with a key made for the run), so its finished-build GET and "
        "cache-hit POST read the results of real builds through its own worker. "
        "asu 0.7.x has no `/api/v1/stats`, hence no status-GET row."
    )
    out.append("")


def main():
    data = load(sys.argv[1])
    f = data["facts"]
    out = [
        "# Benchmarks\n",
        f"Written by `make bench` (tests/bench/bench.sh) on {f.get('date')} for commit "
        f"{f.get('commit')}. Every figure comes from that one run, with asu-builder, the bare "
        "stack and the peer side by side on one machine; run `make bench` again to replace "
        "this file. Numbers from a shared or busy machine are noisy: compare the ratios "
        "measured in one run, not figures across runs.\n",
    ]
    section_machine(data, out)
    section_method(data, out)
    section_http(data, out)
    section_targets(data, out)
    section_peer_ratio(data, out)
    section_start(data, out)
    section_rss(data, out)
    section_builds(data, out)
    section_peer(data, out)
    with open(sys.argv[2], "w") as fh:
        fh.write("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
