#!/usr/bin/python3
"""Unit test of tools/bench's baseline comparison (tools/benchlib/compare.py) on synthetic
results: an injected regression in either direction must be flagged, figures within the
threshold (or better than the baseline) must not, and a missing figure is reported apart."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from benchlib.compare import compare, format_report  # noqa: E402

baseline = {
    "cycles": {"value": 100.0, "unit": "cycles/packet", "better": "lower"},
    "mpps": {"value": 2.0, "unit": "Mpps", "better": "higher"},
    "gone": {"value": 5.0, "unit": "x", "better": "lower"},
}
failures = []

# Within 25 %: 120 cycles (20 % worse), 1.6 Mpps (20 % worse); nothing flagged.
reg, ok, missing = compare({"cycles": {"value": 120.0}, "mpps": {"value": 1.6}}, baseline, 0.25)
if reg or {r["name"] for r in ok} != {"cycles", "mpps"} or [m["name"] for m in missing] != ["gone"]:
    failures.append(f"non-regression flagged: {reg} {ok} {missing}")

# Better than baseline: never a regression.
reg, _, _ = compare({"cycles": {"value": 50.0}, "mpps": {"value": 9.0}}, baseline, 0.25)
if reg:
    failures.append(f"improvement flagged: {reg}")

# Injected regressions: 130 cycles (30 % worse), 1.4 Mpps (30 % worse).
reg, ok, _ = compare({"cycles": {"value": 130.0}, "mpps": {"value": 1.4}}, baseline, 0.25)
if sorted(r["name"] for r in reg) != ["cycles", "mpps"] or ok:
    failures.append(f"injected regressions not detected: {reg}")
elif "REGRESSION cycles" not in format_report(reg, ok, [], 0.25):
    failures.append("report does not name the regression")

# The threshold is honoured: the same 30 % is fine at 50 %.
reg, _, _ = compare({"cycles": {"value": 130.0}, "mpps": {"value": 1.4}}, baseline, 0.5)
if reg:
    failures.append(f"threshold 50 % ignored: {reg}")

if failures:
    print("FAIL\n  " + "\n  ".join(failures))
    sys.exit(1)
print("ok: baseline comparison flags regressions both ways and only beyond the threshold")
