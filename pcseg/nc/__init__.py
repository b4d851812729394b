"""Neural collapse for imbalanced segmentation: simplex ETF, class centers, the CeCo
center loss and collapse metrics. Plotting imports matplotlib only when called."""
from __future__ import annotations

from .ceco import DEFAULT_SCALE, CenterHead, ceco_loss
from .centers import all_reduce_sum, class_centers
from .etf import simplex_etf
from .metrics import FeatureStats, nc_metrics, pairwise_cosines
from .plots import iou_plot_classes, plot_cosine_heatmaps, plot_iou_vs_frequency
from .report import write_report

__all__ = [
    "DEFAULT_SCALE",
    "CenterHead",
    "FeatureStats",
    "all_reduce_sum",
    "ceco_loss",
    "class_centers",
    "iou_plot_classes",
    "nc_metrics",
    "pairwise_cosines",
    "plot_cosine_heatmaps",
    "plot_iou_vs_frequency",
    "simplex_etf",
    "write_report",
]
