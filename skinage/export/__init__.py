"""Shipping a trained model: ``onnx`` (``skinage export``: ONNX fp32 / int8 with parity checks) and
``predict`` (``skinage predict``: torch-free with an ``.onnx`` file). Nothing is imported here, so
``skinage.export.predict`` stays free of torch."""
