"""Running an exported model without PyTorch: what ``skinage predict MODEL.onnx``, a web server's
``POST /api/predict`` and the browser page's Python twin share.

* :mod:`skinage.runtime.onnx_io`: the file's contract (tensor names ``pixels`` / ``probs``, the
  ``skinage`` metadata key), :func:`~skinage.runtime.onnx_io.ort_session` and
  :func:`~skinage.runtime.onnx_io.read_onnx_metadata`;
* :mod:`skinage.runtime.predictor`: :class:`~skinage.runtime.predictor.OnnxPredictor` (uint8 crops in,
  probabilities out, the :class:`~skinage.preprocess.Preprocess` and the class rule from the metadata)
  and :func:`~skinage.runtime.predictor.load_predictor`;
* :mod:`skinage.runtime.predict`: ``skinage predict`` (images, folders, manifests -> rows).

Nothing here imports torch; a checkpoint (not an ``.onnx`` file) given to ``load_predictor`` loads
:class:`skinage.export.torch_predictor.TorchPredictor` lazily. Nothing is imported by this file.
"""
