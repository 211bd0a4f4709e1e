"""A training run's folder and every file written into it.

``<project>/<name>`` (``runs/train``, ``runs/train2``, ... see :func:`increment_run_dir`) holds
``args.yaml`` (the resolved options plus ``precision_used``), ``results.csv`` (one row per epoch),
``weights/best.*`` and ``weights/last.*`` (safetensors + JSON metadata), ``weights/last_state.pt``
(what ``--resume`` continues from; written last each epoch, atomically, loaded with
``weights_only=True``), ``metrics.json``, ``predictions.csv`` (test split) and ``set_aside.csv``
(unreadable images, when any). Training writes these files only through :class:`Run`, and in a
distributed run (``torchrun``) only rank 0 does; the other ranks get what rank 0 reads (the state to
resume, the best weights) from it, so they never need the folder.

A run started by ``torchrun`` is remembered in ``<project>/.torchrun/<TORCHELASTIC_RUN_ID>``
(:func:`remember_run`), so that workers restarted by ``torchrun --max-restarts`` find its folder and
resume it (:func:`remembered_run`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import config_to_dict
from ..utils import atomic_write, atomic_write_json, atomic_write_text
from .device import resolve_device, resolve_precision

__all__ = ["Run", "increment_run_dir", "read_resume_args", "remember_run", "remembered_run"]

#: what args.yaml records besides the options (not options themselves: --resume drops them)
RECORDED = ("precision_used", "world_size", "backend")


def increment_run_dir(project: Path, name: str, exist_ok: bool = False) -> Path:
    """``project/name``, or ``project/name2``, ``name3``, ... if taken.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> increment_run_dir(d, "train").name
    'train'
    >>> (d / "train").mkdir(); increment_run_dir(d, "train").name
    'train2'
    """
    project = Path(project)
    p = project / name
    if exist_ok or not p.exists():
        return p
    i = 2
    while (project / f"{name}{i}").exists():
        i += 1
    return project / f"{name}{i}"


def read_resume_args(path: Path) -> tuple[Path, dict]:
    """The run folder ``--resume`` names (or its ``weights`` folder) and the options of its ``args.yaml``.

    Raises FileNotFoundError, saying what to do, for a folder that is no run or has no epoch to continue from.
    """
    import yaml

    run_dir = Path(path)
    if not (run_dir / "weights" / "last_state.pt").is_file() and run_dir.name == "weights":
        run_dir = run_dir.parent
    args = run_dir / "args.yaml"
    if not args.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no args.yaml); --resume takes the folder of a run "
                                "started with `skinage train`")
    if not (run_dir / "weights" / "last_state.pt").is_file():
        raise FileNotFoundError(f"{run_dir} has no weights/last_state.pt: the run stopped before finishing its first "
                                "epoch; start it again")
    saved = yaml.safe_load(args.read_text(encoding="utf-8")) or {}
    saved.pop("resume", None)
    for key in RECORDED:
        saved.pop(key, None)
    return run_dir, saved


def _marker(project: Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(run_id))
    return Path(project) / ".torchrun" / safe


def remember_run(project: Path, run_id: str, run_dir: Path) -> None:
    """Note that torchrun's run ``run_id`` (``TORCHELASTIC_RUN_ID``) trains into ``run_dir``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); remember_run(d, "abc", d / "train3")
    >>> remembered_run(d, "abc") == (d / "train3").absolute(), remembered_run(d, "other")
    (True, None)
    """
    atomic_write_text(_marker(project, run_id), str(Path(run_dir).absolute()))


def remembered_run(project: Path, run_id: str) -> Optional[Path]:
    """The folder :func:`remember_run` noted for ``run_id``, or None."""
    f = _marker(project, run_id)
    return Path(f.read_text(encoding="utf-8").strip()) if f.is_file() else None


class Run:
    """One training run: its options, data, preprocessing, device and precision, and its folder's files.

    Parameters
    ----------
    cfg : TrainConfig
        The resolved options.
    run_dir : Path
        The folder (made by :meth:`start`).
    data : skinage.training.data.TrainData
    pre : skinage.preprocess.Preprocess
    resuming : bool
        Continue the run in ``run_dir`` from its ``weights/last_state.pt``.
    dist : skinage.training.distributed.Dist, optional
        This process's place in a distributed run (default: one process); only rank 0 writes.
    """

    def __init__(self, cfg, run_dir: Path, data, pre, resuming: bool = False, dist=None):
        from .distributed import Dist

        self.dist = dist if dist is not None else Dist()
        self.main = self.dist.main
        self.cfg = cfg
        self.dir = Path(run_dir)
        self.wdir = self.dir / "weights"
        self.state_path = self.wdir / "last_state.pt"
        self.data = data
        self.pre = pre
        self.resuming = resuming
        self.device = self.dist.device if self.dist.active else resolve_device(cfg.device)
        if cfg.precision == "auto" and cfg.mode == "feature":
            self.precision = "fp32"  # --precision auto: fp32 features, bf16 where supported for finetune/distill
        else:
            self.precision = resolve_precision(cfg.precision, self.device)
        self.rows: list[dict] = []  # results.csv, one dict per finished epoch

    # -- start and resume -----------------------------------------------------------------------
    def start(self) -> None:
        """Make the folder; a new run writes ``args.yaml`` (options that ``--resume`` reads back)."""
        import yaml

        if not self.main:
            return
        self.wdir.mkdir(parents=True, exist_ok=True)
        if not self.resuming:
            saved = config_to_dict(self.cfg)
            saved.pop("interrupt_at", None)
            saved["resume"] = None
            saved["precision_used"] = self.precision
            saved.update(self.dist.describe())
            atomic_write_text(self.dir / "args.yaml", yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))

    def has_state(self) -> bool:
        return self.state_path.is_file()

    def load_state(self) -> dict:
        """The content of ``weights/last_state.pt``; also reads back results.csv's rows of the epochs it covers.

        Rank 0 reads them, every rank gets them."""
        import pandas as pd
        import torch

        st, rows = None, []
        if self.main:
            st = torch.load(self.state_path, map_location="cpu", weights_only=True)
            res = self.dir / "results.csv"
            if res.is_file():
                prev = pd.read_csv(res)
                rows = prev[prev["epoch"] <= int(st["epoch"]) + 1].to_dict("records")  # 1-based epochs
        st, self.rows = self.dist.broadcast((st, rows))
        return st

    def read_checkpoint(self, name: str) -> dict:
        """The tensors of ``weights/<name>.safetensors`` (rank 0 reads the file, every rank gets them)."""
        from safetensors.torch import load_file

        return self.dist.broadcast(load_file(str(self.wdir / f"{name}.safetensors")) if self.main else None)

    # -- files written during training ------------------------------------------------------------
    def add_row(self, row: dict) -> None:
        """Append an epoch's row and rewrite ``results.csv``."""
        import pandas as pd

        self.rows.append(row)
        if not self.main:
            return
        with atomic_write(self.dir / "results.csv", "w", encoding="utf-8", newline="") as f:
            pd.DataFrame(self.rows).to_csv(f, index=False, float_format="%.6g")

    def checkpoint_meta(self, epoch: int) -> dict:
        """What a checkpoint of this run says about itself (``epoch`` 1-based)."""
        from ..models.checkpoint import versions

        cfg = self.cfg
        return {
            "classes": self.data.classes,
            "ordered": self.data.ordered,
            "mode": cfg.mode,
            "epoch": epoch,
            "preprocessing": self.pre.to_meta(),
            "versions": versions(),
            "train": {"data": str(cfg.data), "seed": cfg.seed, "precision": self.precision,
                      "teacher": str(cfg.teacher) if cfg.teacher else None},
        }

    def save_checkpoint(self, net, name: str, epoch: int) -> None:
        """``weights/<name>.safetensors`` and ``.json`` of ``net`` after epoch ``epoch`` (1-based)."""
        from ..models.checkpoint import save_checkpoint

        if not self.main:
            return
        save_checkpoint(net, self.checkpoint_meta(epoch), self.wdir / name)

    def save_state(self, state: dict) -> None:
        """Write ``weights/last_state.pt`` atomically (the file ``--resume`` trusts)."""
        import torch

        if not self.main:
            return
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    # -- files written at the end -----------------------------------------------------------------
    def write_predictions(self, df, y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> None:
        """``predictions.csv``: path, subject, view, label, pred, p_0 .. p_K-1 of the rows of ``df``."""
        import pandas as pd

        if not self.main:
            return
        out = pd.DataFrame({
            "path": df["path"].astype(str).values,
            "subject": df["subject"].astype(str).values if "subject" in df else "",
            "view": df["view"].astype(str).values if "view" in df else "",
            "label": y, "pred": pred})
        for k in range(probs.shape[1]):
            out[f"p_{k}"] = np.round(probs[:, k], 6)
        with atomic_write(self.dir / "predictions.csv", "w", encoding="utf-8", newline="") as f:
            out.to_csv(f, index=False)

    def write_metrics(self, metrics: dict) -> None:
        if not self.main:
            return
        atomic_write_json(self.dir / "metrics.json", metrics)

    def write_set_aside(self) -> Optional[Path]:
        """``set_aside.csv`` with the unreadable images and their reasons, when there are any."""
        import pandas as pd

        if not self.data.set_aside or not self.main:
            return None
        path = self.dir / "set_aside.csv"
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            pd.DataFrame(self.data.set_aside).to_csv(f, index=False)
        return path
