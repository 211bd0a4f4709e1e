"""Shipping a trained model: ``skinage export`` (:mod:`skinage.export.export`), one module per job:

* :mod:`~skinage.export.graph`: the exported graph (the ``PixelModel`` wrapper: uint8 pixels in,
  probabilities out) and its metadata;
* :mod:`~skinage.export.formats`: the formats as one table (fp32 ONNX, int8 ONNX, TorchScript: file,
  writer, runner, how parity is checked) and the fp32 / TorchScript writers;
* :mod:`~skinage.export.calibration`: the images an export reads (calibration, parity check, search);
* :mod:`~skinage.export.parity`: parity, noise floor, near ties, timing and the results table;
* :mod:`~skinage.export.quantize`: the int8 quantiser (equalisation, bias correction, search);
* :mod:`~skinage.export.torch_predictor`: predicting with a checkpoint in PyTorch.

Running an exported file needs none of this: see :mod:`skinage.runtime` (torch-free). Nothing is imported
here.
"""

from ..commands import callable_module

callable_module(__name__, "export")
