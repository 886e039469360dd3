"""Index of the reproduced tables and a check of the papers' claims on them.

    python benchmarks/reproduce_summary.py [benchmarks/results/reproduce]

Reads every ``MODEL/TABLE.json`` that ``sava reproduce`` wrote and writes
``SUMMARY.md`` beside them: for each claim, per model, the numbers it rests
on and whether our measurement agrees. Nothing is tuned to make a claim hold;
a claim that fails is reported as failing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(folder: Path) -> dict[str, dict[str, dict]]:
    tables: dict[str, dict[str, dict]] = {}
    for path in sorted(folder.glob("*/*.json")):
        tables.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return tables


def pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def measured(tables, table: str):
    """(model, rows) for every model that has ``table``, in the models' order."""
    for model, by_table in tables.items():
        if table in by_table:
            yield model, by_table[table]["rows"]


def fr(rows: list[dict], approach: str, **match) -> float:
    return next(r["fooling_rate"] for r in rows if r["approach"] == approach and
                all(r.get(k) == v for k, v in match.items()))


def ordering(tables) -> list[str]:
    lines = ["## FR: DeepSAVA with BO >= DeepSAVA on the first frame >= Sparse (one frame, same cap)", "",
             "| model | budget | BO | first frame | Sparse | BO >= first | first >= Sparse |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model, by_table in tables.items():
        cases = []
        if "table6" in by_table:
            cases.append(("cap only", by_table["table6"]["rows"], {}))
        if "table5" in by_table:
            for budget in dict.fromkeys(r["budget"] for r in by_table["table5"]["rows"]):
                cases.append((budget, by_table["table5"]["rows"], {"budget": budget}))
        for budget, rows, match in cases:
            bo = fr(rows, "DeepSAVA with BO", **match)
            first = fr(rows, "DeepSAVA without BO (first frame)", **match)
            sparse = fr(rows, "Sparse (first frame)", **match)
            lines.append(f"| {model} | {budget} | {pct(bo)} | {pct(first)} | {pct(sparse)} | "
                         f"{verdict(bo >= first)} | {verdict(first >= sparse)} |")
    return lines


def frames_rise(tables) -> list[str]:
    lines = ["## FR rises with the number of perturbed frames (Table 7, Fig. 6)", "",
             "| model | approach | 1 | 2 | 4 | non-decreasing |", "| --- | --- | --- | --- | --- | --- |"]
    for model, rows in measured(tables, "table7"):
        for approach in dict.fromkeys(r["approach"] for r in rows):
            rates = [r["fooling_rate"] for r in sorted((r for r in rows if r["approach"] == approach),
                                                        key=lambda r: r["frames"])]
            rising = all(b >= a for a, b in zip(rates, rates[1:]))
            lines.append(f"| {model} | {approach} | " + " | ".join(pct(v) for v in rates) + f" | {verdict(rising)} |")
    return lines


def bo_vs_brute(tables) -> list[str]:
    lines = ["## BO reaches the brute-force best frame's outcome on >= 90% of videos with fewer generator runs "
             "(Table 8)", "",
             "| model | BO FR | brute FR | BO does as well | same frame | runs BO / brute | holds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model, (bo, brute) in measured(tables, "table8"):
        reach = bo.get("reaches_brute_force")
        holds = reach is not None and reach >= 0.9 and bo["generator_runs_per_video"] < brute[
            "generator_runs_per_video"]
        lines.append(f"| {model} | {pct(bo['fooling_rate'])} | {pct(brute['fooling_rate'])} | {pct(reach)} | "
                     f"{pct(bo.get('same_frame_as_brute_force'))} | {bo['generator_runs_per_video']} / "
                     f"{brute['generator_runs_per_video']} | {verdict(holds)} |")
    return lines


def keyframes(tables) -> list[str]:
    lines = ["## Xu et al.: adaptive keyframes need fewer queries (MQ) and less perturbation (MAP) than first-k "
             "and IFD", "", "| model | goal | MQ ours / SA / IFD | MAP ours / SA / IFD | fewest queries | "
             "smallest MAP |", "| --- | --- | --- | --- | --- | --- |"]
    for model, rows in measured(tables, "xu-table2"):
        for goal in dict.fromkeys(r["goal"] for r in rows):
            ours, *others = [r for r in rows if r["goal"] == goal]
            mq = [r["mq"] for r in [ours, *others]]
            maps = [r["map"] for r in [ours, *others]]
            fmt = lambda values, form: " / ".join("-" if v is None else format(v, form) for v in values)  # noqa: E731
            fewest = None not in mq and mq[0] <= min(mq[1:])
            smallest = None not in maps and maps[0] <= min(maps[1:])
            lines.append(f"| {model} | {goal} | {fmt(mq, '.1f')} | {fmt(maps, '.4f')} | {verdict(fewest)} | "
                         f"{verdict(smallest)} |")
    return lines


def translation(tables) -> list[str]:
    lines = ["## TT raises the transfer success rate of each base attack", "",
             "| white box | black box | " + " | ".join(f"{m} / tt-{m}" for m in ("fgsm", "bim", "mi", "di", "ti"))
             + " | TT higher / equal / lower |", "| --- | --- |" + " --- |" * 6]
    for model, rows in measured(tables, "tt"):
        for key in [k for k in rows[0] if k.startswith("asr:")]:
            cells, tally = [], [0, 0, 0]
            for method in ("fgsm", "bim", "mi", "di", "ti"):
                plain = next(r[key] for r in rows if r["method"] == method and not r["tt"])
                tt = next(r[key] for r in rows if r["method"] == method and r["tt"])
                tally[0 if tt > plain else 1 if tt == plain else 2] += 1
                cells.append(f"{pct(plain)} / {pct(tt)}")
            lines.append(f"| {model} | {key[4:]} | " + " | ".join(cells) + f" | {' / '.join(map(str, tally))} |")
    return lines


def compression(tables) -> list[str]:
    lines = ["## Compression: the flow part survives H.264 better than noise alone (DeepSAVA 4.2.3)", "",
             "| model | perturbation | FR before | still fooled at CRF 18 / 23 / 28 / 35 |",
             "| --- | --- | --- | --- |"]
    for model, rows in measured(tables, "compression"):
        for row in rows:
            after = " / ".join(pct(row.get(f"after_crf{crf}")) for crf in (18, 23, 28, 35))
            lines.append(f"| {model} | {row['approach']} | {pct(row['fooling_rate'])} | {after} |")
    return lines


def defences(tables) -> list[str]:
    lines = ["## Combined-perturbation training lowers DeepSAVA's FR by >= 10 points for <= 3 points of clean "
             "accuracy (Table 11)", "",
             "| model | defence | clean accuracy | FR DeepSAVA | FR Sparse | FR DeepSAVA, SSIM >= 0.95 "
             "| holds (cap / SSIM) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model, table in measured(tables, "table11"):
        rows = {r["approach"]: r for r in table}
        if "none" not in rows:
            continue
        base = rows["none"]
        for name, row in rows.items():
            holds = "-"
            if name == "combined":
                kept = base["clean_accuracy"] - row["clean_accuracy"] <= 0.03
                holds = " / ".join(verdict(kept and base[key] - row[key] >= 0.10)
                                   for key in ("fr_deepsava", "fr_deepsava_budget") if key in row)
            lines.append(f"| {model} | {name} | {pct(row['clean_accuracy'])} | {pct(row['fr_deepsava'])} | "
                         f"{pct(row['fr_sparse'])} | {pct(row.get('fr_deepsava_budget'))} | {holds} |")
    return lines


def index(tables, folder: Path) -> list[str]:
    lines = ["## Tables", "", "| model | tables |", "| --- | --- |"]
    for model, by_table in tables.items():
        links = ", ".join(f"[{name}]({model}/{name}.md) ([plot]({model}/{name}.png))" for name in by_table)
        lines.append(f"| {model} | {links} |")
    commands = sorted({t["command"] for by_table in tables.values() for t in by_table.values()})
    environments = {json.dumps(t.get("environment"), sort_keys=True) for bt in tables.values() for t in bt.values()}
    lines += ["", "Commands (each table's JSON names its own):", ""] + [f"    {c}" for c in commands]
    lines += ["", "Environments:", ""] + [f"    {e}" for e in sorted(environments)]
    return lines


def main(folder: Path) -> None:
    tables = load(folder)
    parts = ["# Reproduced comparisons on the bundled benchmark", "",
             "Written by `benchmarks/reproduce_summary.py` from the JSON files beside it. \"no\" marks a claim of "
             "the papers that our measurement does not support; see the README for what we make of it.", ""]
    for section in (ordering, frames_rise, bo_vs_brute, keyframes, translation, compression, defences):
        parts += section(tables) + [""]
    parts += index(tables, folder)
    (folder / "SUMMARY.md").write_text("\n".join(parts) + "\n")
    print(f"written: {folder / 'SUMMARY.md'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "reproduce"))
