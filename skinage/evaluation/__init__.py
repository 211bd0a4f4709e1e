"""Evaluation that cannot flatter.

* :mod:`.metrics` -- accuracy, balanced accuracy, precision / recall / F1, QWK, MAE in levels,
  within-one accuracy, per-class figures, confusion matrices, expected calibration error;
* :mod:`.bootstrap` -- 95 % intervals by bootstrap over persons (cluster bootstrap), paired differences;
* :mod:`.baselines` -- majority class, stratified random (expected), metadata-only logistic regression;
* :mod:`.fusion` -- person-level fusion of views, breakdown by view;
* :mod:`.plots` -- confusion matrices, training curves, t-SNE / PCA, Grad-CAM, reliability diagram;
* :mod:`.report` -- one self-contained report.html;
* :mod:`.evaluate` -- ``skinage evaluate`` / :func:`skinage.evaluate`;
* :mod:`.compare` -- ``skinage compare`` / :func:`skinage.compare`.

Modules are imported lazily (``import skinage.evaluation`` loads no torch).
"""
