"""The table (markdown, on standard output) and the plot of an end-to-end
benchmark run, from the JSON lines `benches/e2e/run.sh` wrote.

    python3 benches/e2e/report.py RESULTS.jsonl [--machine FILE] [--plot PNG]

Medians over the rounds; each ratio is the median of the per-round ratios of
runs made next to each other (A B A B), not a ratio of medians. Sizes are
MiB/GiB, throughput decimal MB/s.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

NAMES = {
    "baseline": "bare hyper → file (`bench_baseline`)",
    "resumable": "resumable example server (SHA-256 on)",
    "rustus": "rustus 0.5 (crates.io), as it comes: no fsync",
    "rustus-fsync": "rustus 0.5 with `--force-fsync true`",
    "tus-node": "@tus/server + @tus/file-store (Node; no fsync)",
    "discard": "bare hyper, body discarded (ceiling)",
}


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=0, unit=""):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}{unit}"


def mib(b):
    return b / (1 << 20)


def size_text(b):
    return f"{b / (1 << 30):g} GiB" if b >= 1 << 30 else f"{mib(b):g} MiB"


def verdict(ok):
    return "" if ok is None else ("met" if ok else "**not met**")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--machine")
    ap.add_argument("--plot")
    args = ap.parse_args()
    runs = [json.loads(line) for line in open(args.results) if line.strip()]
    out = []
    p = out.append

    p("# End-to-end upload benchmark")
    p("")
    facts = {}
    if args.machine:
        facts = dict(line.split(": ", 1) for line in open(args.machine).read().splitlines() if ": " in line)
        p("```text")
        p(open(args.machine).read().rstrip())
        p("```")
        p("")
    main_runs = [r for r in runs if r.get("phase") == "main"]
    size = next((r["bytes"] for r in main_runs), None)
    rounds = sorted({r["round"] for r in main_runs})
    by = defaultdict(dict)  # (pattern, target) -> round -> run
    for r in main_runs:
        by[(r["pattern"], r["target"])][r["round"]] = r
    reverse = {r["round"]: r for r in runs if r.get("phase") == "reverse"}

    def mbs(pattern, target):
        return [r["mb_s"] for r in by[(pattern, target)].values()]

    def paired(pattern, a, b, pattern_b=None):
        """Median over rounds of b's MB/s divided by a's."""
        ra, rb = by[(pattern, a)], by[(pattern_b or pattern, b)]
        return median([rb[k]["mb_s"] / ra[k]["mb_s"] for k in ra if k in rb])

    if size is None:
        p("No main-phase runs in the results.")
        print("\n".join(out))
        return
    p(f"{size_text(size)} per upload, {len(rounds)} round(s), medians (min–max) over the rounds.")
    p("")
    # During the runs the load is the benchmark's own (client and server
    # keep it near 2); what tells of other work is the load before them.
    start_load = float(facts.get("load average at start", "0").split()[0] or 0)
    if start_load > 0.5:
        p(f"**Trial figures**: the load average (1 min) was {start_load:.2f} before the first run, so")
        p("other work shared the two cores; compare the ratios within rounds, not the absolute figures.")
        p("")
    p("## Throughput")
    p("")
    p("| pattern | server | MB/s | ratio | server peak RSS | server CPU s/GiB | target |")
    p("|---|---|---|---|---|---|---|")
    chunk = next((r["chunk_size"] for r in main_runs if r["pattern"] == "rest"), None)
    patterns = [
        ("rest", f"REST: {main_runs[0].get('parallel', 4) if main_runs else 4} parallel chunk PUTs of {size_text(chunk or 0)}"),
        ("tus", f"tus: sequential PATCHes of {size_text(chunk or 0)}"),
    ]
    for pattern, label in patterns:
        for target in ["baseline", "resumable", "rustus", "rustus-fsync", "tus-node", "discard"]:
            rs = list(by[(pattern, target)].values())
            if not rs:
                continue
            xs = [r["mb_s"] for r in rs]
            span = f"{fmt(median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"
            ratio, target_text = "", ""
            if target == "baseline":
                ratio = "1 (baseline)"
            elif target in ("resumable", "discard"):
                q = paired(pattern, "baseline", target)
                ratio = f"{fmt(q, 2)}× baseline"
                if target == "resumable":
                    target_text = f"≥ 0.9× baseline: {verdict(q >= 0.9 if q else None)}"
            else:
                q = paired(pattern, target, "resumable")
                ratio = f"resumable = {fmt(q, 2)}× this"
                if target in ("rustus", "rustus-fsync"):
                    target_text = f"resumable ≥ 2× rustus: {verdict(q >= 2 if q else None)}"
            rss = max(r.get("server_peak_rss_kib", 0) for r in rs) / 1024
            cpu = median([r["server_cpu_seconds"] / (r["bytes"] / (1 << 30)) for r in rs if "server_cpu_seconds" in r])
            p(f"| {label} | {NAMES.get(target, target)} | {span} | {ratio} | {fmt(rss, 1)} MiB | {fmt(cpu, 2)} | {target_text} |")
            if pattern == "tus" and target == "resumable":
                # The same runs without the last PATCH, which carries the assembly.
                def early(r):
                    return (r["bytes"] - r["chunk_size"]) / (r["upload_seconds"] - r["last_request_seconds"]) / 1e6
                ys = [early(r) for r in rs]
                base = by[("tus", "baseline")]
                q = median([early(r) / base[r["round"]]["mb_s"] for r in rs if r["round"] in base])
                p(f"| {label} | resumable, all but the last PATCH (no assembly) | {fmt(median(ys))} ({fmt(min(ys))}–{fmt(max(ys))}) | {fmt(q, 2)}× baseline | | | |")
    p("")
    p("REST MB/s is initiate + all chunk PUTs (no `complete`, timed below); the baseline has no")
    p("initiate. tus MB/s is creation + all PATCHes: tus has no separate complete, so the upload")
    p("server's assembly runs inside the last PATCH (below). Peak RSS is the largest VmHWM over the")
    p("rounds (a fresh server per run); CPU is the server's user + system time per GiB uploaded")
    p("(for the upload server's REST runs, `complete` included). The client runs on the same two")
    client = {pat: median([r["client_cpu_seconds"] / (r["bytes"] / (1 << 30)) for r in main_runs
                           if r["pattern"] == pat and r.get("client_cpu_seconds") is not None]) for pat in ("rest", "tus")}
    p(f"cores as the server; it used {fmt(client['rest'], 2)} s (REST) and {fmt(client['tus'], 2)} s (tus) of CPU per GiB.")
    p("")

    p("## `complete`")
    p("")
    copies = [r["seconds"] for r in runs if r.get("pattern") == "copy"]
    copy = median(copies)
    p(f"Copy baseline: `dd bs=1M conv=fsync` of a {size_text(size)} file in the page cache, "
      f"median {fmt(copy, 3)} s ({fmt(min(copies) if copies else None, 3)}–{fmt(max(copies) if copies else None, 3)}).")
    p("")
    p("| what | median s (min–max) | ÷ copy | target |")
    p("|---|---|---|---|")
    inorder = [r["complete_seconds"] for r in by[("rest", "resumable")].values() if r.get("complete_seconds") is not None]
    rev = [r["complete_seconds"] for r in reverse.values() if r.get("complete_seconds") is not None]
    copy_by_round = {r["round"]: r["seconds"] for r in runs if r.get("pattern") == "copy"}

    def ratio_to_copy(rows):
        return median([r["complete_seconds"] / copy_by_round[r["round"]] for r in rows if r["round"] in copy_by_round and r.get("complete_seconds") is not None])

    q_in = ratio_to_copy(list(by[("rest", "resumable")].values()))
    q_rev = ratio_to_copy(list(reverse.values()))
    if inorder:
        p(f"| REST `complete`, chunks sent in order | {fmt(median(inorder), 3)} ({fmt(min(inorder), 3)}–{fmt(max(inorder), 3)}) | {fmt(q_in, 2)} | ≤ 0.1× copy: {verdict(q_in <= 0.1 if q_in else None)} |")
    if rev:
        p(f"| REST `complete`, chunks sent in reverse order | {fmt(median(rev), 3)} ({fmt(min(rev), 3)}–{fmt(max(rev), 3)}) | {fmt(q_rev, 2)} | at most one read of the data |")
    tus = list(by[("tus", "resumable")].values())
    if tus:
        last = [r["last_request_seconds"] for r in tus]
        med = [r["median_request_seconds"] for r in tus]
        p(f"| tus: last PATCH (its bytes + the assembly) | {fmt(median(last), 3)} ({fmt(min(last), 3)}–{fmt(max(last), 3)}) | {fmt(median([r['last_request_seconds'] / copy_by_round[r['round']] for r in tus if r['round'] in copy_by_round]), 2)} | (a median PATCH takes {fmt(median(med), 3)} s) |")
    tb = list(by[("tus", "baseline")].values())
    if tb:
        p(f"| tus on the baseline: last PATCH | {fmt(median([r['last_request_seconds'] for r in tb]), 3)} | | (median PATCH {fmt(median([r['median_request_seconds'] for r in tb]), 3)} s) |")
    p("")

    rss_runs = [r for r in runs if r.get("phase") == "rss"]
    p("## Server peak RSS")
    p("")
    p("| dialect | at " + size_text(size) + " (max over rounds) | " + (f"at {size_text(rss_runs[0]['bytes'])}" if rss_runs else "larger size (RSS_SIZE not set)") + " | target |")
    p("|---|---|---|---|")
    for pattern in ["rest", "tus"]:
        small = [r["server_peak_rss_kib"] for r in by[(pattern, "resumable")].values()]
        big = [r["server_peak_rss_kib"] for r in rss_runs if r["pattern"] == pattern]
        if not small:
            continue
        worst = max(small + big) / 1024
        flat = None
        if big:
            # Flat: at most 10 % (and 2 MiB of slack) above the 1 GiB peak.
            flat = max(big) <= max(small) * 1.1 + 2048
        ok = worst <= 64 and flat is not False
        p(f"| {pattern} | {fmt(max(small) / 1024, 1)} MiB | {fmt(max(big) / 1024, 1) + ' MiB' if big else '–'} | ≤ 64 MiB{' and flat' if big else ''}: {verdict(ok)} |")
    p("")

    sweep = [r for r in runs if r.get("phase") == "sweep"]
    if sweep:
        p("## Throughput against chunk size")
        p("")
        series = defaultdict(dict)
        totals = defaultdict(dict)
        for r in sweep:
            series[(r["pattern"], r["target"])][r["chunk_size"]] = r["mb_s"]
            totals[(r["pattern"], r["target"])][r["chunk_size"]] = r["total_mb_s"]
        chunks = sorted({r["chunk_size"] for r in sweep})
        keys = [k for k in [("rest", "baseline"), ("rest", "resumable"), ("tus", "baseline"), ("tus", "resumable")] if k in series]
        p("| chunk | " + " | ".join(f"{pat} {tgt} MB/s" for pat, tgt in keys) + " | REST ratio | tus ratio |")
        p("|---|" + "---|" * (len(keys) + 2))
        for c in chunks:
            vals = [series[k].get(c) for k in keys]
            rr = series[("rest", "resumable")].get(c), series[("rest", "baseline")].get(c)
            tr = series[("tus", "resumable")].get(c), series[("tus", "baseline")].get(c)
            q1 = rr[0] / rr[1] if None not in rr else None
            q2 = tr[0] / tr[1] if None not in tr else None
            p(f"| {size_text(c)} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(q1, 2)} | {fmt(q2, 2)} |")
        p("")
        p(f"One run per point ({size_text(sweep[0]['bytes'])} each). Plot: `benches/e2e/throughput-vs-chunk-size.png`.")
        p("")
        if args.plot:
            note = ""
            if args.machine:
                note = f"{facts.get('date', '')}, {facts.get('cpu', '')}, load average {facts.get('load average at start', '?').split()[0]} at start"
            plot(series, totals, keys, args.plot, sweep[0]["bytes"], note)

    print("\n".join(out))


def plot(series, totals, keys, path, size, note):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plot)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    style = {
        ("rest", "baseline"): ("tab:blue", "--", "REST pattern, bare hyper → file"),
        ("rest", "resumable"): ("tab:blue", "-", "REST dialect, resumable"),
        ("tus", "baseline"): ("tab:orange", "--", "tus pattern, bare hyper → file"),
        ("tus", "resumable"): ("tab:orange", "-", "tus dialect, resumable"),
    }
    for k in keys:
        xs = sorted(series[k])
        color, line, label = style[k]
        ax.plot([mib(x) for x in xs], [series[k][x] for x in xs], line, color=color, marker="o", label=label)
    if ("rest", "resumable") in totals:
        xs = sorted(totals[("rest", "resumable")])
        ax.plot([mib(x) for x in xs], [totals[("rest", "resumable")][x] for x in xs], ":", color="tab:blue",
                marker="s", label="REST dialect, resumable, complete included")
    ax.set_xscale("log", base=2)
    ticks = sorted({mib(x) for k in keys for x in series[k]})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("chunk / PATCH size (MiB)")
    ax.set_ylabel("throughput (MB/s)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Upload of {size_text(size)} over loopback (REST: 4 parallel PUTs; tus: sequential PATCH)"
                 + (f"\n{note}" if note else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"(plot written to {path})", file=sys.stderr)


if __name__ == "__main__":
    main()
