"""Figures (the surface layer): `curves` (training curves, classifier regions, memory scaling,
Pareto fronts, state/gradient heatmaps) and `plans` (diagrams of checkpointing plans).

matplotlib is imported inside each drawing function, so importing these modules costs nothing.
"""
