#!/usr/bin/env python3
"""Prints criterion's latest estimates (median, ns) as a Markdown table, with each bearer
row's ratio to its floor at the same store size: sha256 + HashMap for the in-memory rows, a
bare redb get for the rows that read the store. Usage: benches/report.py [criterion dir]"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in root.glob("*/*/new/estimates.json"):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    median = json.loads(est.read_text())["median"]["point_estimate"]
    rows[bench["full_id"]] = median
for est in root.glob("*/*/*/new/estimates.json"):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    rows[bench["full_id"]] = json.loads(est.read_text())["median"]["point_estimate"]

print("| benchmark | median | vs floor |")
print("|---|---|---|")
for name in sorted(rows, key=lambda n: (n.split("/")[0], int(n.split("/")[-1]) if n.split("/")[-1].isdigit() else 0, n)):
    ns = rows[name]
    parts = name.split("/")
    ratio = ""
    if parts[0] == "bearer" and len(parts) == 3:
        floor_name = "redb_bare_get" if parts[1] in ("cold_lookup", "revoked_token") else "floor_sha256_hashmap"
        floor = rows.get(f"bearer/{floor_name}/{parts[2]}")
        if floor:
            ratio = f"{ns / floor:.2f}× {'redb get' if floor_name == 'redb_bare_get' else 'floor'}"
    shown = f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
    print(f"| {name} | {shown} | {ratio} |")
