"""Markdown table of several CeCo studies that share their CE arm (e.g. one per ``--ceco-weight``),
read from their ``study.json``, so a README table holds exactly what the studies measured.

    python bench/study_table.py runs/study_w02 runs/study_w04 runs/study_w08 [--label "weight {w}"]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ceco_study import pairs_needed  # noqa: E402

ROWS = (("miou", "mIoU"), ("miou_head", "head"), ("miou_common", "common"), ("miou_tail", "tail"),
        ("macc", "mAcc"), ("maxangle_means", "max-angle, class means"),
        ("equiangularity_means", "equiangularity, class means"))
PERCENT = {"miou", "miou_head", "miou_common", "miou_tail", "macc"}


def _fmt(key: str, x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    v = 100 * x if key in PERCENT else x
    text = f"{v:+.2f}" if signed and key in PERCENT else f"{v:+.3f}" if signed else \
        f"{v:.2f}" if key in PERCENT else f"{v:.3f}"
    return text.replace("-", "−")


def table(folders: list[Path], label: str) -> str:
    studies = [json.loads((f / "study.json").read_text()) for f in folders]
    ce = [s["arms"]["ce"]["summary"] for s in studies]
    if any(c != ce[0] for c in ce):
        raise SystemExit("the studies do not share their CE arm (different CE results): not one table")
    head = "| metric | CE | " + " | ".join(
        f"{label.format(w=s['settings']['ceco_weight'])}: CeCo | − CE [95 % CI]" for s in studies) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(studies))]
    for key, name in ROWS:
        c = ce[0][key]
        cells = [f"{_fmt(key, c['mean'])} ± {_fmt(key, c['std'])}"]
        for s in studies:
            a, p = s["arms"]["ceco"]["summary"][key], s["paired"][key]
            ci = p["ci95"]
            cells += [f"{_fmt(key, a['mean'])} ± {_fmt(key, a['std'])}",
                      f"**{_fmt(key, p['mean'], True)}** [{_fmt(key, ci[0], True)}, {_fmt(key, ci[1], True)}]"
                      if ci else "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for s in studies:
        p = s["paired"]["miou"]
        seeds = ", ".join(_fmt("miou", v, True) for v in p["per_seed"].values())
        lines.append(f"- {label.format(w=s['settings']['ceco_weight'])}: mIoU per seed {seeds}; spread "
                     f"{100 * p['std']:.2f} points; pairs to resolve a 1-point difference: "
                     f"{pairs_needed(p['std'], 0.01)}, a 0.5-point one: {pairs_needed(p['std'], 0.005)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="+", type=Path, help="study output folders (each with study.json)")
    ap.add_argument("--label", default="weight {w:g}", help="column label; {w} is the CeCo weight")
    args = ap.parse_args(argv)
    missing = [f for f in args.studies if not (f / "study.json").is_file()]
    if missing:
        print(f"error: no study.json in {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    print(table(args.studies, args.label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
