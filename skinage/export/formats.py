"""The export formats, one table (:func:`export_formats`): each format's name, file, writer, runner and how
its parity is checked. ``skinage export`` writes the formats asked for in the table's order and checks and
times each against its reference; a new format is one more row (and its writer).

>>> for f in export_formats():
...     print(f"{f.name:16} {f.file:16} vs {f.reference}")
onnx fp32        model.onnx       vs pytorch fp32
onnx int8        model.int8.onnx  vs onnx fp32
onnx fp16        model.fp16.onnx  vs onnx fp32
torchscript fp32 model.ts.pt      vs pytorch fp32
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..preprocess import Preprocess
from ..runtime.onnx_io import INPUT_NAME, OUTPUT_NAME, ort_session
from ..utils import say
from .graph import PixelModel, graph_index, onnx_metadata, write_metadata

__all__ = ["ExportFormat", "ExportJob", "export_formats", "export_onnx", "export_torchscript", "fold_input_scaling",
           "jit_load"]


@dataclass
class ExportJob:
    """One export in progress: what the writers read (the model, its checkpoint ``meta``, the options ``cfg`` of
    :class:`~skinage.export.export.ExportConfig`, the run folder, the fp32 ``info`` for the metadata, the images
    of :func:`~skinage.export.calibration.export_images`) and the ``files`` written so far (format key -> path)."""

    model: Any
    meta: dict
    cfg: Any
    run_dir: Path
    info: dict
    images: Any = None
    files: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExportFormat:
    """A row of :func:`export_formats`.

    ``name``: the results table's row; ``key``: its key in ``export_results.json``'s ``files``; ``file``: the file
    name in the output folder; ``wanted(cfg)``: whether the options ask for it; ``write(job, path)``: writes it;
    ``runner(path, threads)``: a callable from uint8 pixels (N, H, W, 3) to probabilities; ``reference``: the row
    it is compared with; ``noise_floor``: also the noise-floor row (:func:`~skinage.export.parity.noise_row`);
    ``near_ties``: also how near a tie its disagreements were.
    """

    name: str
    key: str
    file: str
    wanted: Callable[[Any], bool]
    write: Callable[[ExportJob, Path], Path]
    runner: Callable[[Path, int], Callable[[np.ndarray], np.ndarray]]
    reference: str
    noise_floor: bool = False
    near_ties: bool = False


def export_formats() -> list[ExportFormat]:
    """The formats ``skinage export`` writes, in the order it writes, checks and times them."""
    return [
        ExportFormat("onnx fp32", "onnx_fp32", "model.onnx", lambda cfg: True, _write_fp32, _onnx_runner,
                     reference="pytorch fp32", noise_floor=True),
        ExportFormat("onnx int8", "onnx_int8", "model.int8.onnx", lambda cfg: bool(cfg.int8 or cfg.int8_search),
                     _write_int8, _onnx_runner, reference="onnx fp32", near_ties=True),
        ExportFormat("onnx fp16", "onnx_fp16", "model.fp16.onnx", lambda cfg: bool(cfg.fp16) or cfg.format == "all",
                     _write_fp16, _onnx_runner, reference="onnx fp32", near_ties=True),
        ExportFormat("torchscript fp32", "torchscript", "model.ts.pt",
                     lambda cfg: cfg.format in ("torchscript", "all"), _write_torchscript, _torchscript_runner,
                     reference="pytorch fp32"),
    ]


# --------------------------------------------------------------------------------------------
# writers

def _write_fp32(job: ExportJob, path: Path) -> Path:
    path = export_onnx(job.model, job.meta, path, job.cfg.opset, run=str(job.run_dir))
    say(f"skinage export: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


def _write_int8(job: ExportJob, path: Path) -> Path:
    from .quantize.int8 import quantize_int8

    cfg, images = job.cfg, job.images
    say(f"skinage export: quantising to int8 with {len(images.calib_x)} calibration images")
    path = quantize_int8(job.files["onnx_fp32"], path, images.calib_x, job.info, calibration=cfg.calibration,
                         fp32_stem_convs=cfg.fp32_stem_convs, search_val=images.search_x,
                         search_target=cfg.int8_search_target, search_max_fp32_convs=cfg.int8_search_budget,
                         search_max_mb=cfg.int8_search_max_mb, bias_correction=cfg.int8_bias_correction,
                         reduce_range=cfg.int8_reduce_range, equalize=cfg.int8_equalize, progress=True)
    say(f"skinage export: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


def _write_fp16(job: ExportJob, path: Path) -> Path:
    from .fp16 import write_fp16

    path = write_fp16(job.files["onnx_fp32"], path)
    say(f"skinage export: wrote {path} ({path.stat().st_size / 1e6:.2f} MB, weights stored as float16)")
    return path


def _write_torchscript(job: ExportJob, path: Path) -> Path:
    return export_torchscript(job.model, job.meta, path)


def export_onnx(model, meta: dict, path: str | os.PathLike, opset: int = 17, run: str | None = None) -> Path:
    """Write the fp32 ONNX graph of ``model`` (uint8 NHWC in, probabilities out) with metadata.

    Uses the TorchScript-based exporter (``dynamo=False``): it gives a plain graph with
    batch norm folded into the convolutions, which ONNX Runtime's quantiser handles well.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = PixelModel(model)
    dummy = torch.zeros(2, *Preprocess.from_meta(meta).shape, dtype=torch.uint8)
    tmp = path.with_name("." + path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=int(opset), do_constant_folding=True, dynamo=False)
    import onnx

    m = onnx.load(str(tmp))
    if fold_input_scaling(m):
        onnx.save(m, str(tmp))
    os.replace(tmp, path)
    onnx.checker.check_model(str(path))
    write_metadata(path, onnx_metadata(meta, "fp32", run))
    return path


def _input_chain(first, consts: dict, users: dict) -> list | None:
    """``first`` (a Div by a scalar constant) and the Sub and Div by constants reading it one after the other."""
    if first.op_type != "Div" or first.input[1] not in consts or consts[first.input[1]].size != 1:
        return None
    chain = [first]
    for op in ("Sub", "Div"):
        nxt = users.get(chain[-1].output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != op or nxt[0].input[0] != chain[-1].output[0] \
                or nxt[0].input[1] not in consts:
            return None
        chain.append(nxt[0])
    return chain


def fold_input_scaling(model_proto) -> bool:
    """Replace ``x / 255``, ``- mean``, ``/ std`` (three passes over the input image) by one
    per-channel ``x * a + b`` (two passes); the same numbers to ~1e-7. Returns False (graph untouched)
    if the chain is not there."""
    from onnx import helper, numpy_helper

    g = model_proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    users = graph_index(model_proto)[2]
    for first in g.node:
        chain = _input_chain(first, consts, users)
        if chain is None:
            continue
        k = consts[first.input[1]].astype(np.float64)
        mean, std = (consts[n.input[1]].astype(np.float64) for n in chain[1:])
        if mean.ndim != 4 or std.ndim != 4:
            continue
        g.initializer.extend([numpy_helper.from_array((1.0 / (k * std)).astype(np.float32), "input_scale"),
                              numpy_helper.from_array((-mean / std).astype(np.float32), "input_shift")])
        mul = helper.make_node("Mul", [first.input[0], "input_scale"], ["input_scaled"], name="/input/Mul")
        add = helper.make_node("Add", ["input_scaled", "input_shift"], [chain[-1].output[0]], name="/input/Add")
        at = list(g.node).index(first)
        for n in chain:
            g.node.remove(n)
        g.node.insert(at, add)
        g.node.insert(at, mul)
        _drop_unused_constants(g)
        return True
    return False


def _drop_unused_constants(g) -> None:
    used = {i for n in g.node for i in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    for n in [n for n in g.node if n.op_type == "Constant" and n.output[0] not in used]:
        g.node.remove(n)


def export_torchscript(model, meta: dict, path: str | os.PathLike) -> Path:
    """A traced TorchScript file with the same interface (uint8 NHWC in, probabilities out)."""
    import torch

    path = Path(path)
    shape = Preprocess.from_meta(meta).shape
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(PixelModel(model), torch.zeros(1, *shape, dtype=torch.uint8))
        ts = torch.jit.freeze(ts)
    info = onnx_metadata(meta, "fp32")
    tmp = path.with_name("." + path.name + ".tmp")
    torch.jit.save(ts, str(tmp), _extra_files={"skinage.json": json.dumps(info)})
    os.replace(tmp, path)
    return path


def jit_load(path):
    """A TorchScript file, loaded (torch.jit's deprecation warning silenced: it is still the phone format)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))


# --------------------------------------------------------------------------------------------
# runners: uint8 pixels -> probabilities

def _onnx_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    sess = ort_session(path, threads)
    return lambda x: sess.run(None, {INPUT_NAME: x})[0]


def _torchscript_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """(``threads``: torch's own setting applies.)"""
    import torch

    ts = jit_load(path)

    def run(x):
        with torch.inference_mode():
            return ts(torch.from_numpy(x)).numpy()

    return run
