"""Reporting the scores: formatting, figures, the analysis files and the one report of a results directory.

Who owns what:

* :mod:`~loop.bench.reporting.formatting`: table cells, the shown tables (:func:`~.formatting.display`,
  :func:`~.formatting.threshold_display`), Markdown, plain text, the compact terminal table, the trend lines, the
  interval and verdict note (:func:`~.formatting.interval_note`), the A/A control's lines and the range-edge lines.
* :mod:`~loop.bench.reporting.plots`: the learning curves, the wall-clock overview, the speedup by threshold
  and the performance profiles (matplotlib, imported when a figure is drawn).
* :mod:`~loop.bench.reporting.analysis`: :func:`~.analysis.write_analysis`, the thresholds and profiles as files.
* :mod:`~loop.bench.reporting.report`: :func:`~.report.report`, everything above for one results directory.

Every number comes from :mod:`loop.bench.scoring`; nothing here computes one.
"""

from loop.bench.reporting.analysis import write_analysis
from loop.bench.reporting.formatting import (AA_NOTE, COMPACT_COLUMNS, SEED000_CAPTION, aa_lines, cell, compact,
                                             display, edge_lines, interval_note, threshold_display, to_markdown,
                                             to_text, trend_summaries)
from loop.bench.reporting.report import report

__all__ = ["AA_NOTE", "COMPACT_COLUMNS", "SEED000_CAPTION", "aa_lines", "cell", "compact", "display", "edge_lines",
           "interval_note", "report", "threshold_display", "to_markdown", "to_text", "trend_summaries",
           "write_analysis"]
