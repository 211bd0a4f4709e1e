"""The int8 file of ``skinage export --int8``, one module per job:

* :mod:`~skinage.export.quantize.quantizer`: :class:`~skinage.export.quantize.quantizer.Int8Quantizer`
  (ONNX Runtime's static QDQ quantisation: calibrate once, quantise many times) and the nodes kept fp32;
* :mod:`~skinage.export.quantize.equalize`: activation equalisation before calibration;
* :mod:`~skinage.export.quantize.bias`: bias correction of the int8 weights' mean error;
* :mod:`~skinage.export.quantize.search`: ``--int8-search``, the calibration method and fp32 blocks chosen
  on validation images;
* :mod:`~skinage.export.quantize.int8`: :func:`~skinage.export.quantize.int8.quantize_int8`, the int8 file
  with its metadata (the int8 row of :func:`skinage.export.formats.export_formats`).

Nothing is imported here.
"""
