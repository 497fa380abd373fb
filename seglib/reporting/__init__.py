"""What a reader sees: colours and overlays, figures, markdown tables, and report.md/html."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "plots": ("structure_color", "overlay_rgb", "overlay"),
    "figures": ("show_samples", "plot_history", "show_predictions", "compare_methods", "metric_boxplot", "show_overlays"),
    "tables": ("markdown_table", "metric_table"),
    "document": ("FIGURES", "REPORT_FILES", "build_report"),
})
