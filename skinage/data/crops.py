"""Crops of many images, as a model reads them: the one loader of training, evaluation, export and predict.

:func:`iter_crops` cuts a list of ``(path, bbox)`` items batch by batch with a model's
:class:`skinage.preprocess.Preprocess` (the next batch is decoded in a thread while the caller
works on this one); an image that cannot be read is reported with its reason, never dropped
silently. :func:`load_crops` gathers all batches; :class:`CropStore` holds a split's crops in memory
as a uint8 torch tensor for training.

>>> import tempfile, os
>>> from PIL import Image
>>> from skinage.preprocess import Preprocess
>>> d = tempfile.mkdtemp(); good = os.path.join(d, "a.png"); bad = os.path.join(d, "b.jpg")
>>> Image.new("RGB", (40, 30), (10, 20, 30)).save(good); _ = open(bad, "w").write("not an image")
>>> idx, x, errors = load_crops(Preprocess(size=16), [(good, None), (bad, None)])
>>> idx.tolist(), x.shape, [(i, e.reason) for i, e in errors]
([0], (1, 16, 16, 3), [(1, 'non-image')])
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from .images import ImageError

__all__ = ["iter_batches", "iter_crops", "load_crops", "context_size", "context_crop", "CropStore", "READ_ERRORS"]

#: What a crop can fail with: an unreadable image or an unusable box (ImageError), a file system
#: error, a value the loader refuses.
READ_ERRORS = (ImageError, OSError, ValueError)


def iter_batches(items: Sequence, batch_size: int, load: Callable, workers: int = 1):
    """Yield ``(batch_items, [load(x) for x in batch_items])``, the next batch loading in a thread.

    ``workers=0`` loads in the caller's thread.

    >>> [(c, r) for c, r in iter_batches([1, 2, 3], 2, lambda v: v * 10)]
    [([1, 2], [10, 20]), ([3], [30])]
    """
    chunks = [items[i:i + batch_size] for i in range(0, len(items), max(1, batch_size))]
    if not chunks:
        return
    if workers <= 0:
        for c in chunks:
            yield c, [load(x) for x in c]
        return
    with ThreadPoolExecutor(max_workers=workers) as ex:
        fut = ex.submit(lambda c: [load(x) for x in c], chunks[0])
        for i, c in enumerate(chunks):
            loaded = fut.result()
            if i + 1 < len(chunks):
                fut = ex.submit(lambda c: [load(x) for x in c], chunks[i + 1])
            yield c, loaded


def iter_crops(pre, items: Sequence[tuple], *, batch_size: int = 64, cache=None, workers: int = 1,
               progress: bool = False, desc: str = "crops") -> Iterator[tuple[np.ndarray, np.ndarray, list]]:
    """Crops of ``items`` (``(path_or_bytes, bbox_or_None)`` pairs) in batches.

    Yields ``(idx, x, errors)`` per batch: ``idx`` the positions (in ``items``) of the images read,
    ``x`` their crops, uint8 ``(len(idx), size, size, 3)``, and ``errors`` a list of
    ``(position, exception)`` for the others (:data:`READ_ERRORS`).
    """
    from tqdm.auto import tqdm

    def load(i):
        src, bbox = items[i][0], items[i][1]
        try:
            return pre.load(src, bbox, cache=cache)
        except READ_ERRORS as e:
            return e

    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for chunk, loaded in iter_batches(list(range(len(items))), batch_size, load, workers=workers):
            ok = [(i, a) for i, a in zip(chunk, loaded) if not isinstance(a, Exception)]
            errors = [(i, a) for i, a in zip(chunk, loaded) if isinstance(a, Exception)]
            x = np.stack([a for _, a in ok]) if ok else pre.empty()
            bar.update(len(chunk))
            yield np.asarray([i for i, _ in ok], dtype=np.int64), x, errors
    finally:
        bar.close()


def load_crops(pre, items: Sequence[tuple], **kw) -> tuple[np.ndarray, np.ndarray, list]:
    """All of :func:`iter_crops` at once: ``(idx, x, errors)`` over every item (one buffer, no copies)."""
    out = np.empty((len(items), *pre.shape), dtype=np.uint8)
    idx, errors, n = [], [], 0
    for i, x, e in iter_crops(pre, items, **kw):
        out[n:n + len(x)] = x
        n += len(x)
        idx.append(i)
        errors += e
    idx = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    return idx, out[:n], errors


def context_size(size: int, context: float) -> int:
    """Side of a crop with ``context`` of the box on every side, for a model reading ``size`` px.

    >>> context_size(224, 0.25)
    336
    """
    return int(round(size * (1 + 2 * float(context))))


def context_crop(pre, source, bbox, context: float, cache=None) -> tuple[np.ndarray, np.ndarray]:
    """The model's crop with ``context`` of its box's width and height added on every side (kept inside the image),
    at :func:`context_size`, and where the plain crop (``pre.load``'s box) lies in it: ``(x0, y0, x1, y1)`` in
    -1..1 (the coordinates of ``torch.nn.functional.affine_grid``). For the ``box`` augmentation.

    >>> import tempfile, os
    >>> from PIL import Image
    >>> from skinage.preprocess import Preprocess
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png"); Image.new("RGB", (100, 80)).save(p)
    >>> crop, rect = context_crop(Preprocess(size=20), p, (40, 30, 60, 50), 0.25)
    >>> crop.shape, rect.round(4).tolist()  # the box's 20 px are the middle of 30: -1 + 2 * 5 / 30 = -2/3
    ((30, 30, 3), [-0.6667, -0.6667, 0.6667, 0.6667])
    >>> context_crop(Preprocess(size=20), p, (0, 0, 20, 20), 0.25)[1].round(4).tolist()  # cut by the image's edge
    [-1.0, -1.0, 0.6, 0.6]
    """
    from .images import expand_box, probe_image

    info = probe_image(source)
    size = (info.width, info.height)
    plain = pre.crop_box(bbox, size)
    ctx = expand_box(plain, size, margin=float(context), square=False)
    n = context_size(pre.size, context)
    if cache is not None and not isinstance(source, (bytes, bytearray, memoryview)):
        arr = cache.get(source, ctx, n, resample=pre.interpolation)
    else:
        from .images import load_crop

        arr = load_crop(source, ctx, size=n, resample=pre.interpolation)
    w, h = ctx[2] - ctx[0], ctx[3] - ctx[1]
    rect = np.array([(plain[0] - ctx[0]) / w, (plain[1] - ctx[1]) / h, (plain[2] - ctx[0]) / w,
                     (plain[3] - ctx[1]) / h], dtype=np.float64) * 2 - 1
    return arr, rect


class CropStore:
    """The crops of some manifest rows in memory, uint8 ``(N, 3, S, S)`` torch tensors, decoded once.

    Rows whose image cannot be read are left out and passed to ``on_error(record, reason)``; ``df``
    keeps the rows that were read, in order, and ``y`` their labels. ``context`` > 0 keeps each crop with
    that much context around its box (:func:`context_crop`; side :func:`context_size`) and ``rects``
    (N, 4) says where the plain crop lies in it; else ``rects`` is None.
    """

    def __init__(self, df, pre, *, cache=None, workers: int = 1, progress: bool = False, desc: str = "crops",
                 on_error: Optional[Callable[[dict, str], None]] = None, context: float = 0.0):
        import torch

        from .manifest import row_bbox

        recs = df.to_dict("records")
        items = [(str(r["path"]), row_bbox(r)) for r in recs]
        self.rects = None
        if context > 0:
            idx, x, rects, errors = _load_context_crops(pre, items, context, cache, max(1, workers), progress, desc)
            self.rects = torch.from_numpy(rects)
        else:
            idx, x, errors = load_crops(pre, items, cache=cache, workers=max(1, workers), progress=progress, desc=desc)
        for i, e in errors:
            if on_error is not None:
                on_error(recs[i], str(e))
        self.df = df.iloc[idx].reset_index(drop=True)
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.y = torch.tensor(self.df["label"].astype(int).to_numpy(), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)


def _load_context_crops(pre, items, context, cache, workers, progress, desc):
    """(idx, crops with context (N, Sc, Sc, 3), rects (N, 4), errors) of ``items`` (:func:`context_crop`)."""
    from tqdm.auto import tqdm

    def load(item):
        try:
            return context_crop(pre, item[0], item[1], context, cache)
        except READ_ERRORS as e:
            return e

    n = context_size(pre.size, context)
    out = np.empty((len(items), n, n, 3), dtype=np.uint8)
    rects = np.empty((len(items), 4), dtype=np.float64)
    idx, errors, k = [], [], 0
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    for chunk, loaded in iter_batches(list(range(len(items))), 64, lambda i: load(items[i]), workers=workers):
        for i, res in zip(chunk, loaded):
            if isinstance(res, Exception):
                errors.append((i, res))
                continue
            out[k], rects[k] = res
            idx.append(i)
            k += 1
        bar.update(len(chunk))
    bar.close()
    return np.asarray(idx, dtype=np.int64), out[:k], rects[:k], errors
