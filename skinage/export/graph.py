"""What an exported graph is: the :func:`PixelModel` wrapper (uint8 pixels in, probabilities out), the
description stored in its metadata (:func:`onnx_metadata`, :func:`write_metadata`), and an index of an
ONNX graph's tensors (:func:`graph_index`) for the passes that edit one.

The exported graph
------------------
* input ``pixels``: **uint8** RGB, shape ``(N, H, W, 3)`` (channels last, batch size dynamic, H = W = the
  :class:`~skinage.preprocess.Preprocess` size) - exactly the crop ``Preprocess.load`` returns, and the byte
  layout a phone camera / bitmap API hands out. The cast to float, the scaling to [0, 1] and the mean/std
  normalisation are *inside* the graph;
* output ``probs``: float32 ``(N, K)`` class probabilities (softmax, or the class probabilities of an
  ordinal CORAL / CORN head, :func:`skinage.models.heads.outputs_to_probs`), in the order of ``classes``;
* ``metadata_props["skinage"]``: JSON with the model name, classes, ordinal type and class rule, the
  preprocessing, the input/output description, precision, the skinage version and the run it came from.
  ``classes`` and ``preprocessing`` are also stored as their own keys for apps that only want those.

>>> info = onnx_metadata({"model": "mobilenet_v2", "classes": ["a", "b"], "preprocessing": {"size": 32}}, "fp32")
>>> info["input"]["shape"], info["output"]["class_rule"], info["precision"]
(['N', 32, 32, 3], 'argmax of the probabilities', 'fp32')
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..models.decode import decision_rule
from ..preprocess import Preprocess
from ..runtime.onnx_io import INPUT_NAME, METADATA_KEY, OUTPUT_NAME
from ..utils import atomic_write

__all__ = ["PixelModel", "onnx_metadata", "write_metadata", "graph_index"]


def PixelModel(model):  # noqa: N802 - a class factory, so that torch is imported lazily
    """Wrap a SkinageModel: uint8 (N, H, W, 3) pixels in, class probabilities out (eval mode)."""
    import torch.nn as nn

    from ..models.heads import outputs_to_probs

    class _PixelModel(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m
            self.ordinal = getattr(m, "ordinal", None)

        def forward(self, pixels):
            x = pixels.permute(0, 3, 1, 2).float() / 255.0
            return outputs_to_probs(self.model(x), self.ordinal)

    return _PixelModel(model).eval()


def onnx_metadata(meta: dict, precision: str, run: str | None = None, extra: dict | None = None) -> dict:
    """The JSON stored under ``metadata_props['skinage']``, from a checkpoint's ``meta``."""
    pre = Preprocess.from_meta(meta)
    out = {
        "model": meta.get("model"),
        "classes": list(meta["classes"]),
        "ordinal": meta.get("ordinal"),
        "preprocessing": pre.to_meta(),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": ["N", pre.size, pre.size, 3], "layout": "NHWC",
                  "range": "RGB 0-255; scaling and mean/std normalisation are inside the graph"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(meta["classes"])],
                   "meaning": "class probabilities in the order of 'classes'",
                   "class_rule": decision_rule(meta.get("ordinal"))},
        "precision": precision,
        "skinage_version": __version__,
        "run": run,
        "mode": meta.get("mode"),
        "weights_from": meta.get("weights_from"),
        "epoch": meta.get("epoch"),
        "tta": meta.get("tta"),
    }
    if extra:
        out.update(extra)
    return out


def write_metadata(path: Path, info: dict) -> None:
    """Replace the metadata of the ONNX file at ``path`` by ``info`` (:func:`onnx_metadata`), its ``classes`` and
    ``preprocessing`` and the skinage version; set the producer and a one-line doc string. Written atomically."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in ((METADATA_KEY, json.dumps(info, ensure_ascii=False)),
                 ("classes", json.dumps(info["classes"], ensure_ascii=False)),
                 ("preprocessing", json.dumps(info["preprocessing"])),
                 ("skinage_version", __version__)):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "skinage"
    m.producer_version = __version__
    m.doc_string = (f"skinage {info.get('model')} classifier ({info['precision']}); input '{INPUT_NAME}' uint8 "
                    f"NHWC RGB {info['input']['shape'][1]}x{info['input']['shape'][2]}; output '{OUTPUT_NAME}' "
                    f"probabilities over {info['classes']}")
    with atomic_write(path) as f:
        f.write(m.SerializeToString())


def graph_index(proto) -> tuple[dict, dict, dict]:
    """``proto``'s initializers by name, the node producing each tensor, the nodes reading each tensor.

    >>> from onnx import helper
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [], [])
    >>> inits, producer, consumers = graph_index(helper.make_model(g))
    >>> producer["y"].name, [n.name for n in consumers["x"]]
    ('r', ['r'])
    """
    g = proto.graph
    consumers: dict[str, list] = {}
    for n in g.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    return {i.name: i for i in g.initializer}, {o: n for n in g.node for o in n.output}, consumers
