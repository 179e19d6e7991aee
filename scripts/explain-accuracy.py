#!/usr/bin/env python3
"""How well `oomguard explain --json` reads real OOM texts it was not written from.

Runs the binary on every row of the corpus files given (JSON lines: `message`
or `text`, `expect` as in tests/fixtures/oom/collected_cases.jsonl, optional
`split` and `category`) and prints, per split and per category:

  detect     OOM rows where at least `events_min` events were found
  fields     detected rows whose framework, device, phase and memory figures
             all match (figures within 0.1%, printed figures are rounded)
  top cause  rows with `causes_ok` whose first cause is one of them
  false ev   texts without an OOM (events_min 0, or a `text` row) that gave one

  scripts/explain-accuracy.py [--bin target/debug/oomguard] [--failures] FILE...

A file's rows without `split` are counted under the file's own name.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys


def close(got, want):
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    return abs(got - want) <= max(abs(want) * 0.001, 1.0)


def field_errors(ev, expect):
    bad = []

    def same(what, got, want):
        if want is not None and got != want:
            bad.append(f"{what}: got {got!r}, want {want!r}")

    same("framework", ev.get("framework"), expect.get("framework"))
    same("device.kind", ev["device"].get("kind"), expect.get("device_kind"))
    same("device.index", ev["device"].get("index"), expect.get("device_index"))
    same("phase", ev.get("phase"), expect.get("phase"))
    for field, want in (expect.get("memory") or {}).items():
        if want is None:
            continue
        got = ev["memory"].get(field)
        if field == "other_processes":
            g = got or []
            ok = len(g) == len(want) and all(
                a["pid"] == b["pid"] and close(a["bytes"], b["bytes"]) for a, b in zip(g, want)
            )
            if not ok:
                bad.append(f"memory.other_processes: got {got}, want {want}")
        elif not close(got, want):
            bad.append(f"memory.{field}: got {got}, want {want}")
    return bad


def thread(url):
    """The issue thread a source URL points into (no comment anchor)."""
    return url.split("#", 1)[0].rstrip("/")


def run(binary, text):
    p = subprocess.run(
        [binary, "explain", "--json"], input=text.encode(), capture_output=True, timeout=60
    )
    if p.returncode not in (0, 1):
        return None, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)["events"], ""


class Tally:
    def __init__(self):
        self.c = collections.Counter()

    def add(self, **kw):
        for k, v in kw.items():
            self.c[k] += v

    def cells(self):
        c = self.c

        def frac(a, b):
            return f"{c[a]}/{c[b]} ({100 * c[a] / c[b]:.0f}%)" if c[b] else "-"

        return [
            frac("detected", "oom"),
            frac("fields_ok", "detected"),
            frac("cause_ok", "cause_rows"),
            f"{c['false_events']}/{c['not_oom']}" if c["not_oom"] else "-",
        ]

    def calibration(self):
        """Top cause right per stated confidence, and the right cause anywhere in the list."""
        c = self.c

        def frac(a, b):
            return f"{c[a]}/{c[b]} ({100 * c[a] / c[b]:.0f}%)" if c[b] else "-"

        levels = [frac(f"conf_{lv}_ok", f"conf_{lv}_rows") for lv in ("high", "medium", "low")]
        return levels + [frac("listed_ok", "cause_rows")]


def evaluate(binary, row):
    """Returns (tally counts, failure lines) for one row."""
    text = row.get("message", row.get("text"))
    expect = row.get("expect") or {"events_min": 0}
    events_min = expect.get("events_min", 1)
    events, err = run(binary, text)
    if events is None:
        return {"oom": 1} if events_min else {"not_oom": 1}, [f"exit error: {err.strip()}"]
    if events_min == 0:
        false = 1 if events else 0
        msg = [f"false event: {events[0]['message'][:160]!r}"] if events else []
        return {"not_oom": 1, "false_events": false}, msg
    out = {"oom": 1}
    fails = []
    has_causes = expect.get("causes_ok") is not None
    if has_causes:
        out["cause_rows"] = 1
    if len(events) < events_min:
        fails.append(f"{len(events)} events, want >= {events_min}")
        return out, fails
    if expect.get("events_max") is not None and len(events) > expect["events_max"]:
        fails.append(f"{len(events)} events, want <= {expect['events_max']}")
    out["detected"] = 1
    ev = events[0]
    bad = field_errors(ev, expect)
    if not bad:
        out["fields_ok"] = 1
    fails += bad
    if has_causes:
        top = ev["causes"][0]["id"] if ev["causes"] else None
        # Every event states its confidence (high, medium or low): one that
        # does not fails here rather than drop out of the calibration table.
        level = ev["confidence"]
        assert level in ("high", "medium", "low"), f"confidence {level!r}"
        out[f"conf_{level}_rows"] = 1
        if any(c["id"] in expect["causes_ok"] for c in ev["causes"]):
            out["listed_ok"] = 1
        if top in expect["causes_ok"]:
            out["cause_ok"] = 1
            out[f"conf_{level}_ok"] = 1
        else:
            fails.append(f"top cause {top}, want one of {expect['causes_ok']}")
    listed = [c["id"] for c in ev["causes"]]
    for cause in expect.get("causes_thread") or []:
        if cause not in listed:
            fails.append(f"the thread's cause {cause} is not listed")
    return out, fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/debug/oomguard")
    ap.add_argument("--failures", action="store_true", help="list each failing row")
    ap.add_argument("--split", help="only rows of this split")
    ap.add_argument(
        "--write-fixture",
        metavar="OUT",
        help="also write every row to OUT (JSON lines), failing rows marked known_gap with why",
    )
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    by_split = collections.defaultdict(Tally)
    by_cat = collections.defaultdict(Tally)
    failures = []
    fixture_rows = []
    loaded = []
    for path in a.files:
        if not os.path.exists(path):
            print(f"(missing: {path})", file=sys.stderr)
            continue
        rows = [
            (n, json.loads(line))
            for n, line in enumerate(open(path, encoding="utf-8"), 1)
            if line.strip()
        ]
        loaded.append((path, rows))
    # Threads a dev row comes from: a held-out row from the same thread is
    # not independent of the rules, so each held-out split is also reported
    # without those rows.
    dev_threads = {thread(r.get("source", "")) for _, rows in loaded for _, r in rows if r.get("split") == "dev"}
    for path, rows in loaded:
        base = os.path.basename(path).rsplit(".", 1)[0]
        rows = [(n, r) for n, r in rows if not a.split or (r.get("split") or base) == a.split]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda nr: evaluate(a.bin, nr[1]), rows))
        for (n, row), (counts, fails) in zip(rows, results):
            split = row.get("split") or base
            kept = {k: v for k, v in row.items() if k != "known_gap"}
            if fails:
                kept["known_gap"] = "; ".join(fails)
            fixture_rows.append(kept)
            by_split[split].add(**counts)
            by_split["all"].add(**counts)
            if row.get("split") not in (None, "dev") and thread(row.get("source", "")) not in dev_threads:
                by_split[f"{split}, threads without a dev row"].add(**counts)
            by_cat[(split, row.get("category", "-"))].add(**counts)
            if fails:
                gap = " [known_gap]" if row.get("known_gap") else ""
                failures.append(f"{path}:{n} {split} {row.get('source', row.get('id', '?'))}{gap}\n    " + "\n    ".join(fails))
    head = "| {} | detect | fields | top cause | false events |"
    print(head.format("split"))
    print("|---|---|---|---|---|")
    for split in sorted(by_split, key=lambda s: (s == "all", s)):
        print(f"| {split} | " + " | ".join(by_split[split].cells()) + " |")
    print()
    print("| split | top cause right, confidence high | medium | low | right cause anywhere in the list |")
    print("|---|---|---|---|---|")
    for split in sorted(by_split, key=lambda s: (s == "all", s)):
        print(f"| {split} | " + " | ".join(by_split[split].calibration()) + " |")
    print()
    print(head.format("split / category"))
    print("|---|---|---|---|---|")
    for key in sorted(by_cat):
        print(f"| {key[0]} / {key[1]} | " + " | ".join(by_cat[key].cells()) + " |")
    if a.write_fixture:
        with open(a.write_fixture, "w", encoding="utf-8") as out:
            for row in fixture_rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if a.failures and failures:
        print("\nFailures:")
        print("\n".join(failures))


if __name__ == "__main__":
    main()
