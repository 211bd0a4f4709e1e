"""The embedding cache of ``feature`` mode: backbone features computed once per image.

A frozen backbone turns each image (and, for training images, ``aug_views``
augmented versions of it) into one embedding vector, stored as a ``.npy`` file
under ``skinage.utils.cache_dir()/features``. The key of a file is

* the *model key*: backbone name, a hash of the backbone's actual weights (so a
  fine-tuned teacher and the ImageNet backbone never share entries), the
  preprocessing (input size, mean/std, interpolation, crop margin / square) and
  the numeric precision of the forward pass;
* the *image key*: absolute path, file size and modification time, bounding box;
* the view: ``v0`` is the plain crop, ``a<i>_<spec>`` the i-th augmented view made
  with augmentation spec ``<spec>`` and a seed derived from the image key and i
  (so a view is the same image every time it is recomputed).

Changing only the head (hidden sizes, dropout, learning rate, ...) therefore reuses
every embedding; adding views computes only the new ones.

:meth:`FeatureCache.get` assembles the embeddings of a table's rows into one ``.npy`` file,
``sets/<key>.npy`` (key: the rows' image keys, the views and their tag), and returns it memory-mapped
(copy-on-write): 100,000 x 1,280 floats (512 MB) are pages of a file the operating system can drop
and read again, not a second copy in the process's memory, and ``torch.from_numpy`` uses them as
they are. The same rows again map that file at once (no per-image reads). A set with unreadable rows
is not reused (they are retried). The newest :data:`KEEP_SETS` sets are kept, older ones deleted.

>>> image_key("/nonexistent/a.jpg", (0, 0, 10, 10)) == image_key("/nonexistent/a.jpg", (0, 0, 10, 10))
True
>>> image_key("/nonexistent/a.jpg", None) == image_key("/nonexistent/a.jpg", (0, 0, 10, 10))
False
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

import torch

from ..data.crops import iter_batches
from ..data.images import ImageError
from ..data.manifest import BBOX_COLUMNS, row_bbox
from ..utils import cache_dir, say
from .augment import DEFAULT_AUGMENT
from .device import autocast_context

__all__ = ["FeatureCache", "image_key", "weights_hash", "finite_rows", "KEEP_SETS"]

#: Assembled sets (``sets/*.npy``) kept per model and preprocessing; the least recently used go first.
KEEP_SETS = 9  # three runs' train, val and test


def weights_hash(module: torch.nn.Module) -> str:
    """A short sha1 of a module's parameters and buffers (names, shapes and values)."""
    h = hashlib.sha1()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _bbox_tuple(bbox) -> tuple | None:
    if bbox is None:
        return None
    vals = [float(v) for v in bbox]
    if any(math.isnan(v) for v in vals):
        return None
    return tuple(round(v, 2) for v in vals)


def image_key(path: str | os.PathLike, bbox=None) -> str:
    """Identity of an image file and crop box: absolute path, size, mtime, bbox."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
        ident = (p, st.st_size, st.st_mtime_ns, _bbox_tuple(bbox))
    except OSError:
        ident = (p, None, None, _bbox_tuple(bbox))
    return hashlib.sha1(repr(ident).encode("utf-8")).hexdigest()


class FeatureCache:
    """Compute-or-load embeddings of manifest rows for one frozen model.

    Parameters
    ----------
    model : SkinageModel
        Its ``features(x)`` gives the embeddings (inputs float [0, 1]).
    pre : skinage.preprocess.Preprocess
        How the crops are cut (part of the cache key).
    precision : "fp32" or "bf16" (autocast) for the forward pass.
    batch_size : forward batch size (32-64 is the sweet spot on a CPU).
    root : cache folder (default ``cache_dir()/features``).
    """

    def __init__(self, model, pre, precision: str = "fp32", batch_size: int = 64, root: str | os.PathLike | None = None,
                 channels_last: bool = True, device: str = "cpu", progress: bool = True):
        self.model = model
        self.pre = pre
        self.precision = precision
        self.batch_size = int(batch_size)
        self.channels_last = channels_last
        self.device = device
        self.progress = progress
        ident = {"model": model.backbone_name, "weights": weights_hash(model.backbone), **pre.identity(),
                 "precision": precision}
        self.ident = ident
        self.model_key = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
        self.root = Path(root) if root else cache_dir() / "features"
        self.dir = self.root / f"{model.backbone_name}-{self.model_key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        info = self.dir / "info.json"
        if not info.is_file():
            from ..utils import atomic_write_json

            atomic_write_json(info, ident)
        self._crop_cache = None
        self.stats = {"computed": 0, "reused": 0, "seconds": 0.0}

    # -- keys -----------------------------------------------------------------------------------
    def _file(self, ikey: str, view: int, tag: str) -> Path:
        name = f"{ikey}_v0.npy" if view == 0 else f"{ikey}_a{view}_{tag}.npy"
        return self.dir / ikey[:2] / name

    def _crop(self, path: str, bbox) -> torch.Tensor:
        """One crop as a uint8 (3, size, size) tensor, through the decoded-crop cache."""
        if self._crop_cache is None:
            from ..data.images import CropCache

            self._crop_cache = CropCache()
        arr = self.pre.load(path, bbox, cache=self._crop_cache)
        return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()

    def _context(self, path: str, bbox) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop with context (uint8 (3, Sc, Sc)) and where the plain crop lies in it, for the ``box`` step."""
        from ..data.crops import context_crop
        from .phone_augment import BOX_CONTEXT

        if self._crop_cache is None:
            from ..data.images import CropCache

            self._crop_cache = CropCache()
        arr, rect = context_crop(self.pre, path, bbox, BOX_CONTEXT, cache=self._crop_cache)
        return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous(), \
            torch.from_numpy(rect)

    # -- main entry -------------------------------------------------------------------------------
    def get(self, df, views: int = 0, aug_spec: str = DEFAULT_AUGMENT, desc: str = "features",
            on_error: Callable[[int, str], None] | None = None, rotate_deg: float = 10.0,
            crop_scale: float = 0.75, noise_std: float = 0.03) -> np.ndarray:
        """Embeddings of every row of ``df``: array (N, 1 + views, D) float32, memory-mapped from the cache.

        View 0 is the plain crop; views 1..``views`` are augmented versions. A row
        whose image cannot be read is reported through ``on_error(index, reason)``
        and gets NaN embeddings (the caller sets it aside). The array is a copy-on-write
        :class:`numpy.memmap` of ``sets/<key>.npy`` (writing to it changes neither the file nor
        the cache); it is an ordinary in-memory array when the cache folder cannot hold the file.
        """
        n, shape = len(df), (len(df), 1 + views, self.model.feature_dim)
        paths = df["path"].astype(str).tolist()
        bcols = [c for c in BBOX_COLUMNS if c in df.columns]
        bboxes = [row_bbox(dict(zip(bcols, vals))) for vals in df[bcols].itertuples(index=False, name=None)] \
            if bcols else [None] * n
        ikeys = [image_key(p, b) for p, b in zip(paths, bboxes)]
        tag = _views_tag(views, aug_spec, rotate_deg, crop_scale, noise_std)
        if n == 0:
            return np.zeros(shape, dtype=np.float32)
        set_file = self.dir / "sets" / f"{_set_key(ikeys, views, tag)}.npy"
        arr = _open_set(set_file, shape)
        if arr is not None:
            self.stats["reused"] += n * (1 + views)
            return arr
        out, tmp = _new_set(set_file, shape)
        todo = self._read_cached(ikeys, views, tag, out)
        bad: dict[int, str] = {}
        if todo:
            # group the work per image so each crop is loaded once for all its views
            per_image: dict[int, list[int]] = {}
            for i, v in todo:
                per_image.setdefault(i, []).append(v)
            aug = None
            from .augment import needs_context

            if views:
                from .augment import build_augment

                aug = build_augment(aug_spec, self.pre.size, rotate_deg, crop_scale, noise_std)
            load = self._view_loader(paths, bboxes, ikeys, aug, bad, context=needs_context(aug_spec) and views > 0)
            n_img = self._compute(list(per_image.items()), load, ikeys, tag, views, out, desc)
            self.stats["computed"] += n_img - sum(len(per_image[i]) for i in bad)
        for i in bad:
            out[i] = np.nan
        if tmp is not None:
            out = _finish_set(out, tmp, set_file, bad)
        for i, reason in bad.items():
            if on_error is not None:
                on_error(i, reason)
            else:
                say(f"  set aside {paths[i]}: {reason}")
        return out

    def _read_cached(self, ikeys: list[str], views: int, tag: str, out: np.ndarray) -> list[tuple[int, int]]:
        """Fill ``out`` with the cached views; the (row, view) pairs still to compute."""
        todo: list[tuple[int, int]] = []
        for i, k in enumerate(ikeys):
            for v in range(1 + views):
                try:
                    out[i, v] = np.load(self._file(k, v, tag))
                    self.stats["reused"] += 1
                except (OSError, ValueError):
                    todo.append((i, v))
        return todo

    def _view_loader(self, paths, bboxes, ikeys, aug, bad: dict[int, str], context: bool = False) -> Callable:
        """``load((row, views)) -> [float image per view]``; an unreadable row gives ``[]`` and its reason in ``bad``.

        ``context``: the augmented views are cut from the crop with context around its box (``box`` step);
        view 0 is always the plain crop."""
        from .augment import to_float

        def load(item):
            i, vs = item
            try:
                crop = self._crop(paths[i], bboxes[i]) if 0 in vs or not context else None
                wide, rect = self._context(paths[i], bboxes[i]) if context and any(vs) else (None, None)
            except ImageError as e:
                bad[i] = str(e)
                return []
            except OSError as e:
                bad[i] = f"cannot read: {e}"
                return []
            imgs = []
            for v in vs:
                if v == 0:
                    imgs.append(to_float(crop))
                else:  # seeded by the image and the view: a view is the same image whenever it is recomputed
                    seed = int(ikeys[i][:8], 16) ^ (v * 2654435761 % (1 << 31))
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        imgs.append(aug(crop) if wide is None else aug(wide, rect))
            return imgs

        return load

    def _compute(self, items: list, load: Callable, ikeys: list[str], tag: str, views: int, out: np.ndarray,
                 desc: str) -> int:
        """Embed the views of ``items`` ((row, [views]) pairs), store them in ``out`` and the cache; the view count."""
        from tqdm.auto import tqdm

        self.model.eval()
        model = self.model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        n_img = sum(len(vs) for _, vs in items)
        bar = tqdm(total=n_img, desc=desc, unit="img", disable=not self.progress, leave=False, dynamic_ncols=True)
        # batch by images so a batch holds about batch_size views
        per = max(1, self.batch_size // max(1, 1 + views)) if views else self.batch_size
        with torch.inference_mode():
            for chunk, loaded in iter_batches(items, per, load, workers=1):
                flat = [(i, v, img) for (i, vs), imgs in zip(chunk, loaded) for v, img in zip(vs, imgs)]
                for s in range(0, len(flat), self.batch_size):
                    part = flat[s:s + self.batch_size]
                    x = torch.stack([img for _, _, img in part]).to(self.device)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with autocast_context(self.precision, self.device):
                        emb = model.features(x)
                    for (i, v, _), e in zip(part, emb.float().cpu().numpy()):
                        out[i, v] = e
                        _save_npy(self._file(ikeys[i], v, tag), e)
                    bar.update(len(part))
                    bar.set_postfix_str(f"{bar.n / max(time.perf_counter() - t0, 1e-9):.1f} img/s")
        bar.close()
        if self.channels_last:
            self.model.to(memory_format=torch.contiguous_format)
        self.stats["seconds"] += time.perf_counter() - t0
        return n_img


def finite_rows(arr: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Rows of ``arr`` (N, ...) holding no NaN or infinity: bool (N,), checked ``chunk`` rows at a time.

    ``np.isfinite(arr).all(axis=...)`` would first make a boolean copy of the whole array (100 MB for
    100,000 x 1,280 values).

    >>> finite_rows(np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, np.inf]])).tolist()
    [True, False, False]
    """
    axes = tuple(range(1, arr.ndim))
    ok = np.empty(len(arr), dtype=bool)
    for s in range(0, len(arr), chunk):
        ok[s:s + chunk] = np.isfinite(arr[s:s + chunk]).all(axis=axes)
    return ok


def _set_key(ikeys: list[str], views: int, tag: str) -> str:
    """The name of the assembled set of these rows (in this order), views and view tag."""
    h = hashlib.sha1(f"{len(ikeys)}:{views}:{tag if views else ''}".encode())
    for k in ikeys:
        h.update(k.encode())
    return h.hexdigest()[:24]


def _open_set(set_file: Path, shape: tuple) -> np.ndarray | None:
    """The assembled set, memory-mapped copy-on-write, when it is complete, of this shape and had no bad rows."""
    meta = set_file.with_suffix(".json")
    try:
        info = json.loads(meta.read_text())
        if info.get("bad") or tuple(info.get("shape", ())) != shape:
            return None
        arr = np.load(set_file, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if arr.shape != shape or arr.dtype != np.float32:
        return None
    try:
        os.utime(set_file)  # recently used: kept by the clean-up
    except OSError:
        pass
    return arr


def _new_set(set_file: Path, shape: tuple) -> tuple[np.ndarray, Path | None]:
    """A file-backed array to assemble a set in (and its temporary path), or an in-memory one if the file fails."""
    tmp = set_file.with_name(f".{set_file.stem}.{os.getpid()}.tmp.npy")
    try:
        set_file.parent.mkdir(exist_ok=True)
        return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape), tmp
    except (OSError, ValueError) as e:
        say(f"  feature cache: cannot write {tmp.parent} ({e}); the embeddings stay in memory")
        with contextlib.suppress(OSError):
            tmp.unlink()
        return np.full(shape, np.nan, dtype=np.float32), None


def _finish_set(out: np.ndarray, tmp: Path, set_file: Path, bad: dict) -> np.ndarray:
    """Flush the assembled set, put it in place with its ``.json`` (shape, bad rows), clean up; return it mapped."""
    from ..utils import atomic_write_json

    shape = out.shape
    out.flush()
    del out
    os.replace(tmp, set_file)
    atomic_write_json(set_file.with_suffix(".json"), {"shape": list(shape), "bad": {str(i): r for i, r in bad.items()}})
    _drop_old_sets(set_file.parent, KEEP_SETS)
    return np.load(set_file, mmap_mode="c")


def _drop_old_sets(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used sets (a process that has one mapped keeps reading it)."""
    try:
        sets = sorted((f for f in folder.glob("*.npy") if not f.name.startswith(".")),  # not others' unfinished sets
                      key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return
    for f in sets[keep:]:
        with contextlib.suppress(OSError):
            f.with_suffix(".json").unlink()
            f.unlink()


def _save_npy(f: Path, e: np.ndarray) -> None:
    """Write one embedding atomically (a reader never sees half a file)."""
    f.parent.mkdir(exist_ok=True)
    tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, e)
    os.replace(tmp, f)


def _views_tag(views: int, aug_spec: str, rotate_deg: float, crop_scale: float, noise_std: float) -> str:
    """The augmented views' part of the file names: the steps and their strengths.

    >>> _views_tag(1, "flip,rotate,jitter,crop", 10.0, 0.75, 0.03)
    'flip-rotate-jitter-crop-r10-s0.75'
    >>> _views_tag(1, "flip,noise", 10.0, 0.75, 0.05)
    'flip-noise-r10-s0.75-n0.05'
    """
    steps_tag = _spec_tag(aug_spec)
    tag = f"{steps_tag}-r{rotate_deg:g}-s{crop_scale:g}"
    if views and "noise" in steps_tag.split("-"):
        tag += f"-n{noise_std:g}"  # only specs with noise: existing cache keys stay valid
    if views and set(steps_tag.split("-")) & {"jpeg", "blur", "light", "box"}:
        from .phone_augment import phone_params

        tag += "-p" + hashlib.sha1(repr(phone_params()).encode()).hexdigest()[:6]  # the phone steps' strengths
    return tag


def _spec_tag(spec: str) -> str:
    from .augment import parse_augment

    steps = parse_augment(spec)
    return "-".join(steps) if steps else "none"
