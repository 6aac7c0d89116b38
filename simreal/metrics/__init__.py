"""Evaluation metrics shared by training, translation scoring and reports."""

from simreal.metrics.segmentation import confusion_matrix, segmentation_scores

__all__ = ["confusion_matrix", "segmentation_scores"]
