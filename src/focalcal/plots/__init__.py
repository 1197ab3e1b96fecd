"""Plots (matplotlib, optional: ``pip install "focalcal[plot]"``): reliability diagrams."""

from focalcal.plots.reliability import reliability_diagram, save_reliability_diagram

__all__ = ["reliability_diagram", "save_reliability_diagram"]
