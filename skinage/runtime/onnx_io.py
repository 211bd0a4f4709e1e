"""The exported file's contract, and opening it with ONNX Runtime (onnxruntime and NumPy only).

An exported model takes ``pixels`` (:data:`INPUT_NAME`): uint8 RGB crops, shape (N, H, W, 3), and
returns ``probs`` (:data:`OUTPUT_NAME`): float32 class probabilities (N, K). Its
``metadata_props[`` :data:`METADATA_KEY` ``]`` holds a JSON description: the classes, the ordinal
type and class rule, the :class:`~skinage.preprocess.Preprocess`, the precision and where it came from
(written by :func:`skinage.export.graph.write_metadata`).

>>> INPUT_NAME, OUTPUT_NAME, METADATA_KEY
('pixels', 'probs', 'skinage')
"""

from __future__ import annotations

import json
import os

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "METADATA_KEY", "ort_session", "read_onnx_metadata"]

INPUT_NAME = "pixels"
OUTPUT_NAME = "probs"
METADATA_KEY = "skinage"  # metadata_props key holding the JSON description of an exported model


def ort_session(path: str | os.PathLike, threads: int = 1, exact_int8: bool = False):
    """An ONNX Runtime CPU session; ``threads`` intra-op threads (0: runtime default).

    ``exact_int8``: ONNX Runtime's exact int8 kernels (``session.x64quantprecision``). On x86 CPUs without
    VNNI the default, fast ones sum pairs of u8 x s8 products in 16 bits, which 8-bit weights can saturate;
    elsewhere both give the same numbers.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if exact_int8:
        so.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def read_onnx_metadata(path_or_session) -> dict:
    """The skinage description embedded in an exported model (classes, preprocessing, ...), from a file
    path or an open session."""
    sess = path_or_session
    if isinstance(sess, (str, os.PathLike)):
        sess = ort_session(sess)
    props = sess.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError("this .onnx file has no skinage metadata (export it with `skinage export RUN`)")
    return json.loads(props[METADATA_KEY])
