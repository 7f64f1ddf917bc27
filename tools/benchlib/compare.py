"""Baseline comparison for tools/bench: a run's figures against tools/bench-baseline.json.

A figure is {"value": number, "unit": str, "better": "lower" | "higher", ...}. A figure is
a regression when it is worse than the baseline's by more than `threshold` (a fraction:
0.25 = 25 %): lower-is-better figures above base * (1 + threshold), higher-is-better ones
below base * (1 - threshold). Figures in the baseline but not in the run are reported as
missing (a --quick run or a skipped peer measures fewer); they are not regressions."""


def compare(figures, baseline, threshold):
    """Returns (regressions, improvements_or_ok, missing): lists of dicts per figure."""
    regressions, ok, missing = [], [], []
    for name, base in sorted(baseline.items()):
        cur = figures.get(name)
        if cur is None:
            missing.append({"name": name, "baseline": base["value"]})
            continue
        b, v = float(base["value"]), float(cur["value"])
        if base["better"] == "lower":
            change = (v - b) / b if b else 0.0
        elif base["better"] == "higher":
            change = (b - v) / b if b else 0.0
        else:
            raise ValueError(f"figure {name}: 'better' must be lower or higher, not {base['better']!r}")
        row = {"name": name, "baseline": b, "value": v, "unit": cur.get("unit", ""),
               "worse_by": change}
        (regressions if change > threshold else ok).append(row)
    return regressions, ok, missing


def format_report(regressions, ok, missing, threshold):
    lines = [f"baseline comparison (threshold {threshold * 100:.0f} %): "
             f"{len(regressions)} regression(s), {len(ok)} within, {len(missing)} not measured"]
    for r in regressions:
        lines.append(f"  REGRESSION {r['name']}: {r['value']:.4g} {r['unit']} vs baseline "
                     f"{r['baseline']:.4g} ({r['worse_by'] * 100:+.0f} % worse)")
    for m in missing:
        lines.append(f"  not measured: {m['name']}")
    return "\n".join(lines)
