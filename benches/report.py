#!/usr/bin/env python3
"""Prints criterion's latest estimates (median, ns) as a Markdown table, with each bearer
row's ratio to the floor of the same store size. Usage: benches/report.py [criterion dir]"""
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
        floor = rows.get(f"bearer/floor_sha256_hashmap/{parts[2]}")
        if floor:
            ratio = f"{ns / floor:.2f}×"
    shown = f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
    print(f"| {name} | {shown} | {ratio} |")
