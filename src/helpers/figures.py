"""One look for every figure: white grid, colour-blind palette, control in grey.

Each arm keeps its colour across months because colours are assigned by the
variant's position in its experiment definition, never by the order of a plot.
No title goes inside an image: the cell's ``fig-cap`` carries the takeaway.
"""

from __future__ import annotations

import sys

import matplotlib

# Draw off-screen in scripts and tests; inside a Jupyter kernel keep the inline
# backend, which is what puts each figure into the executed notebook (and report).
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

CONTROL_GREY = "#8c8c8c"
PALETTE = sns.color_palette("colorblind").as_hex()
ARM_PALETTE = [c for c in PALETTE if c.lower() != CONTROL_GREY]
# Hatches keep arms apart when the report is printed in black and white.
HATCHES = ["", "//", "..", "xx", "\\\\", "++"]
FIGURE_SIZE = (6.4, 3.4)


def set_theme() -> None:
    """Apply Heard's figure theme to matplotlib and seaborn."""
    sns.set_theme(
        style="whitegrid",
        palette=PALETTE,
        context="notebook",
        rc={
            "figure.figsize": FIGURE_SIZE,
            "figure.dpi": 110,
            "savefig.dpi": 160,
            "axes.titlesize": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.family": "DejaVu Sans",
        },
    )


def arm_colours(variants: list[str]) -> dict[str, str]:
    """Return a colour per variant: ``control`` grey, the others in order."""
    colours = {}
    others = iter(ARM_PALETTE)
    for variant in variants:
        colours[variant] = CONTROL_GREY if variant == "control" else next(others)
    return colours


def new_figure(**kwargs):
    """Return ``(figure, axes)`` sized for the report."""
    kwargs.setdefault("figsize", FIGURE_SIZE)
    figure, axes = plt.subplots(**kwargs)
    return figure, axes
