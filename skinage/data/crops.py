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

__all__ = ["iter_batches", "iter_crops", "load_crops", "CropStore", "READ_ERRORS"]

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


class CropStore:
    """The crops of some manifest rows in memory, uint8 ``(N, 3, S, S)`` torch tensors, decoded once.

    Rows whose image cannot be read are left out and passed to ``on_error(record, reason)``; ``df``
    keeps the rows that were read, in order, and ``y`` their labels.
    """

    def __init__(self, df, pre, *, cache=None, workers: int = 1, progress: bool = False, desc: str = "crops",
                 on_error: Optional[Callable[[dict, str], None]] = None):
        import torch

        from .manifest import row_bbox

        recs = df.to_dict("records")
        idx, x, errors = load_crops(pre, [(str(r["path"]), row_bbox(r)) for r in recs], cache=cache,
                                    workers=max(1, workers), progress=progress, desc=desc)
        for i, e in errors:
            if on_error is not None:
                on_error(recs[i], str(e))
        self.df = df.iloc[idx].reset_index(drop=True)
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.y = torch.tensor(self.df["label"].astype(int).to_numpy(), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)
