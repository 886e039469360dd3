"""Markdown tables and plots for ``sava reproduce``."""

from __future__ import annotations

from pathlib import Path


def cell(value, form: str) -> str:
    if value is None:
        return "-"
    if form == "%":
        return f"{value:.1%}"
    return format(value, form)


def markdown(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (header, row key, format: a format spec or ``%``)."""
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key), form) for _, key, form in columns) + " |")
    return "\n".join(lines) + "\n"


def figure(panels: int = 1, width: float = 6.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grouped_bars(axis, groups: list[str], series: dict[str, list[float]], ylabel: str, ylim=None) -> None:
    """One cluster of bars per group, one bar per series."""
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        axis.bar(positions, [0 if v is None else v for v in values], width, label=name)
    axis.set_xticks(range(len(groups)), groups, rotation=15, fontsize=8)
    axis.set(ylabel=ylabel)
    if ylim:
        axis.set_ylim(*ylim)
    axis.legend(fontsize=7)
