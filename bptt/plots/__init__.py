"""Figures (the surface layer): `curves` (training curves, classifier regions, state/gradient
heatmaps), `memory` (memory scaling, Pareto fronts), `plans` (diagrams of checkpointing plans),
`feedback`, `sweep` and `animation`.

matplotlib is imported inside each drawing function, so importing these modules costs nothing.
"""
