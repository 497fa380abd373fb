"""Studies that train, predict and measure end to end: the method comparison of the report, the
symmetry ablation and the speed benchmark."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "method_comparison": ("OURS", "contemporary_runs", "predict_methods"),
    "ablation": ("CONFIGURATIONS", "ablation_folders", "run_ablation"),
    "bench": ("run_benchmark",),
    "bare_network_comparison": ("bare_network", "run_comparison"),
})
