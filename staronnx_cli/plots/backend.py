"""matplotlib for files only, set up once before pyplot is imported: the Agg backend (no display is ever needed),
and no warning for a glyph the font lacks (a node named in Chinese draws as a box: matplotlib's UserWarning on
stderr, one per glyph, said nothing the figure does not show)."""

import warnings

import matplotlib

matplotlib.use("Agg")
warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
