"""Running an exported model without PyTorch: what ``skinage predict MODEL.onnx``, a web server's
``POST /api/predict`` and the browser page's Python twin share.

* :mod:`skinage.runtime.onnx_io`: the file's contract (tensor names ``pixels`` / ``probs``, the
  ``skinage`` metadata key), :func:`~skinage.runtime.onnx_io.ort_session` and
  :func:`~skinage.runtime.onnx_io.read_onnx_metadata`;
* :mod:`skinage.runtime.predictor`: :class:`~skinage.runtime.predictor.OnnxPredictor` (uint8 crops in,
  probabilities out, the :class:`~skinage.preprocess.Preprocess` and the class rule from the metadata)
  and :func:`~skinage.runtime.predictor.load_predictor`;
* :mod:`skinage.runtime.photo`: one photo (a path or the bytes of an upload): the box given or found by the
  face finder (face / forehead models), the crop, the refusals, the row
  (:func:`~skinage.runtime.photo.predict_image`);
* :mod:`skinage.runtime.quality`: the ``too_dark`` rule and its one constant ``MIN_LUMA``;
* :mod:`skinage.runtime.predict`: ``skinage predict`` (images, folders, manifests -> rows; ``to_json``).

Nothing here imports torch; a checkpoint (not an ``.onnx`` file) given to ``load_predictor`` loads
:class:`skinage.export.torch_predictor.TorchPredictor` lazily. Nothing is imported by this file.
"""
