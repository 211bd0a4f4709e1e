"""Evaluation that cannot flatter.

* :mod:`.metrics` -- accuracy, balanced accuracy, precision / recall / F1, QWK, MAE in levels,
  within-one accuracy, per-class figures, confusion matrices, expected calibration error;
* :mod:`.bootstrap` -- 95 % intervals by bootstrap over persons (cluster bootstrap), paired differences;
* :mod:`.baselines` -- majority class, stratified random (expected), metadata-only logistic regression;
* :mod:`.fusion` -- person-level fusion of views, breakdown by view;
* :mod:`.plots` -- confusion matrices, training curves, t-SNE / PCA, Grad-CAM, reliability diagram;
* :mod:`.report` -- one self-contained report.html;
* :mod:`.rows` -- which rows are scored: a run's manifest, the split, labels in the model's order, person ids;
* :mod:`.inference` -- the model's probabilities and embeddings on those rows;
* :mod:`.scoring` -- every figure of an evaluation from labels and probabilities (model and baselines);
* :mod:`.figures` -- which plots an evaluation writes; :mod:`.tables` -- its console tables;
* :mod:`.evaluate` -- ``skinage evaluate`` / :func:`skinage.evaluate`;
* :mod:`.compare` -- ``skinage compare`` / :func:`skinage.compare`.

Modules are imported lazily (``import skinage.evaluation`` loads no torch).
"""
