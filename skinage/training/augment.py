"""On-the-fly augmentation for ``finetune`` / ``distill`` and the augmented views of ``feature`` mode.

Images travel as uint8 CHW tensors (what :class:`skinage.data.dataset.ManifestDataset`
yields); :func:`build_augment` returns a callable mapping one such tensor to an
augmented float32 tensor in ``[0, 1]`` of the same size (the model normalises
inside). Every step is a torchvision ``transforms.v2`` transform, so it runs on the
global torch RNG: seeding torch makes a run (and a resumed run) repeat exactly.

The steps are configured by a comma-separated spec (the ``--augment`` flag):

``flip``      horizontal flip with probability 0.5
``rotate``    random rotation within +-``rotate_deg`` degrees (default 10)
``jitter``    colour jitter (brightness, contrast, saturation 0.2, hue 0.02)
``crop``      random resized crop to the input size, scale (``crop_scale``, 1), ratio 3/4..4/3
``noise``     Gaussian pixel noise: per image a standard deviation drawn uniformly from
              [0, ``noise_std``] (default 0.03, about 8 of 255 levels), then clipped to [0, 1].
              It teaches the model not to change its answer for changes far below what a
              person sees.
``jpeg``, ``blur``, ``light``, ``box``
              phone photos (:mod:`skinage.training.phone_augment`): JPEG re-compression at a random
              quality, Gaussian blur, the scene's light (brightness, contrast, colour temperature),
              and jitter of the region box's scale and position (cut from training crops kept with
              context around the box; validation and test crops are never cut so)
``none``      no augmentation

Order: geometry (box, crop, flip, rotate), jitter, light, blur, noise, jpeg (last, as a phone or an app
saves the photo). The phone steps draw random values only when they are asked for, so a spec without them
augments exactly as before they existed (and its cached feature-mode views stay valid).

>>> import torch
>>> aug = build_augment("flip,rotate,jitter,crop", size=32)
>>> _ = torch.manual_seed(0)
>>> out = aug(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
>>> out.dtype, tuple(out.shape), bool(out.min() >= 0 and out.max() <= 1)
(torch.float32, (3, 32, 32), True)
>>> parse_augment("flip, crop")
('flip', 'crop')

Training batches use :class:`BatchAugment`, the same steps drawn per image but applied
to the whole batch at once (one ``affine_grid``/``grid_sample`` for crop + flip +
rotation, broadcast colour factors), with an explicit ``torch.Generator``: several
times faster than per-image transforms and exactly repeatable.

>>> g = torch.Generator().manual_seed(0)
>>> batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
>>> out = BatchAugment("flip,rotate,jitter,crop", 32)(batch, g)
>>> tuple(out.shape), out.dtype
((4, 3, 32, 32), torch.float32)
>>> torch.equal(BatchAugment("none", 32)(batch, g), batch.float() / 255)
True
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .phone_augment import PHONE_STEPS, box_theta, jpeg, photometric

__all__ = ["AUGMENTS", "DEFAULT_AUGMENT", "parse_augment", "needs_context", "build_augment", "to_float",
           "BatchAugment"]

AUGMENTS = ("flip", "rotate", "jitter", "crop", "noise", "jpeg", "blur", "light", "box", "none")
#: The default steps: the geometric and colour ones plus the four that model phone photos, which narrowed the gap
#: between UTKFace and london-5view photos in both training modes without a loss on UTKFace or in speed
#: (docs/results/cross_source.md).
DEFAULT_AUGMENT = "flip,rotate,jitter,crop,jpeg,blur,light,box"


def parse_augment(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split and check an augmentation spec; ``''``/``'none'``/None -> ``()``."""
    if spec is None:
        return ()
    parts = spec.replace(" ", "").split(",") if isinstance(spec, str) else list(spec)
    out = []
    for p in parts:
        p = p.strip().lower()
        if not p or p == "none":
            continue
        if p not in AUGMENTS:
            import difflib

            close = difflib.get_close_matches(p, AUGMENTS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            from ..config import ConfigError

            raise ConfigError(f"unknown augmentation '{p}'{hint}; choose from {', '.join(AUGMENTS)}")
        out.append(p)
    return tuple(out)


def needs_context(spec) -> bool:
    """Whether the training crops must carry context around the box (the ``box`` step)."""
    return "box" in parse_augment(spec)


def _phone_generator(steps) -> torch.Generator | None:
    """A generator seeded from torch's global RNG for the phone steps of a per-image augmentation (drawn only
    when one is asked for, so the other steps' draws do not move)."""
    if not any(t in PHONE_STEPS for t in steps):
        return None
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 image tensor (any leading dims) -> float32 in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def build_augment(spec: str | Sequence[str] | None, size: int, rotate_deg: float = 10.0,
                  crop_scale: float = 0.75, noise_std: float = 0.03) -> Callable[[torch.Tensor], torch.Tensor]:
    """A per-image augmentation: uint8 (3, H, W) -> float32 (3, size, size) in [0, 1].

    Parameters
    ----------
    spec : str or sequence of str
        Steps to apply, e.g. ``"flip,rotate,jitter,crop"`` (see the module doc).
    size : int
        Output side length (the input is resized to it when no ``crop`` step is given
        and the side differs).
    rotate_deg : float
        Maximum rotation in degrees for ``rotate``.
    crop_scale : float
        Smallest area fraction kept by ``crop``.
    noise_std : float
        Largest standard deviation of ``noise``, in units of the [0, 1] pixel range.
    """
    from torchvision.transforms import v2

    steps = parse_augment(spec)
    ts: list = []
    if "crop" in steps:
        ts.append(v2.RandomResizedCrop(size, scale=(crop_scale, 1.0), antialias=True))
    else:
        ts.append(v2.Resize((size, size), antialias=True))
    if "flip" in steps:
        ts.append(v2.RandomHorizontalFlip(0.5))
    if "rotate" in steps:
        ts.append(v2.RandomRotation(rotate_deg, interpolation=v2.InterpolationMode.BILINEAR))
    if "jitter" in steps:
        ts.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    ts.append(v2.ToDtype(torch.float32, scale=True))
    pipeline = v2.Compose(ts)

    def augment(img: torch.Tensor, rect: torch.Tensor | None = None) -> torch.Tensor:
        """``img`` (3, H, W); ``rect``: where the plain crop lies in ``img`` when it carries context (``box``)."""
        if img.dtype != torch.uint8:
            img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        if img.shape[-1] == size and img.shape[-2] == size and not steps:
            return to_float(img)
        g = _phone_generator(steps)
        if rect is not None:  # cut the (jittered) box out of the crop with context, at the output size
            img = _cut_box(img, rect, size, g, jitter="box" in steps)
        x = pipeline(img)
        x = photometric(x[None], steps, g)[0]
        if "noise" in steps:
            x = (x + torch.randn_like(x) * (float(torch.rand(())) * noise_std)).clamp_(0, 1)
        if "jpeg" in steps:
            x = jpeg(x[None], g)[0]
        return x

    augment.steps = steps  # type: ignore[attr-defined]
    return augment


def _cut_box(img: torch.Tensor, rect: torch.Tensor, size: int, g, jitter: bool) -> torch.Tensor:
    """uint8 (3, size, size): the plain crop's box, jittered, sampled bilinearly from ``img`` (3, Hc, Wc)."""
    import torch.nn.functional as F

    theta = box_theta(rect.view(1, 4), g, jitter)[:, :2].to(torch.float32)
    grid = F.affine_grid(theta, [1, 3, size, size], align_corners=False)
    out = F.grid_sample(to_float(img)[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return (out[0].clamp(0, 1) * 255).round().to(torch.uint8)


class BatchAugment:
    """Per-image random crop / flip / rotation / colour jitter applied to a whole batch.

    Parameters are those of :func:`build_augment`. Call with a uint8 or [0, 1] float
    batch (B, 3, H, W) and a ``torch.Generator``; returns float32 (B, 3, size, size) in [0, 1].
    Geometry: one affine map per image (random resized crop with area in
    [``crop_scale``, 1] and aspect ratio in [3/4, 4/3], horizontal flip with probability
    0.5, rotation within +-``rotate_deg``), sampled bilinearly, outside pixels
    reflected. Colour: brightness, contrast and saturation factors in [0.8, 1.2] and a
    hue rotation within +-0.02 turns (YIQ), as torchvision's ColorJitter(0.2, 0.2, 0.2, 0.02).
    Noise, last: independent Gaussian noise per pixel and channel, its standard deviation drawn per
    image uniformly from [0, ``noise_std``], then clipped to [0, 1]. Steps draw from the generator
    in that order, so adding ``noise`` leaves the other steps' draws as they were.
    """

    def __init__(self, spec, size: int, rotate_deg: float = 10.0, crop_scale: float = 0.75,
                 noise_std: float = 0.03):
        self.steps = parse_augment(spec)
        self.size = int(size)
        self.rotate_deg = float(rotate_deg)
        self.crop_scale = float(crop_scale)
        self.noise_std = float(noise_std)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rects: torch.Tensor | None = None) -> torch.Tensor:
        """Augment ``x`` (B, 3, H, W); ``rects`` (B, 4): where each plain crop lies (-1..1) in ``x`` when ``x``
        holds crops with context (:func:`skinage.data.crops.context_crop`, for ``box``)."""
        import math

        import torch.nn.functional as F

        x = to_float(x)
        B, _, H, W = x.shape
        steps, S = self.steps, self.size
        if not steps and rects is None:
            if (H, W) != (S, S):
                x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True, align_corners=False)
            return x

        def rand(*shape):
            return torch.rand(*shape, generator=generator)

        geometric = any(t in steps for t in ("crop", "flip", "rotate")) or rects is not None
        if geometric:
            sx = torch.ones(B)
            sy = torch.ones(B)
            cx = torch.zeros(B)
            cy = torch.zeros(B)
            if "crop" in steps:
                area = self.crop_scale + (1 - self.crop_scale) * rand(B)
                logr = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand(B)
                r = torch.exp(logr)
                sx = torch.sqrt(area * r).clamp(max=1.0)
                sy = torch.sqrt(area / r).clamp(max=1.0)
                cx = (1 - sx) * (2 * rand(B) - 1)
                cy = (1 - sy) * (2 * rand(B) - 1)
            if "flip" in steps:
                sx = torch.where(rand(B) < 0.5, -sx, sx)
            ang = torch.zeros(B)
            if "rotate" in steps:
                ang = (2 * rand(B) - 1) * math.radians(self.rotate_deg)
            cos, sin = torch.cos(ang), torch.sin(ang)
            theta = torch.stack([torch.stack([sx * cos, -sy * sin, cx], 1),
                                 torch.stack([sx * sin, sy * cos, cy], 1)], 1)
            if rects is not None:  # then into the crop with context, through the (jittered) box
                box = box_theta(rects, generator, "box" in steps)
                theta = (box[:, :2, :2] @ theta.to(torch.float64) + torch.cat(
                    [torch.zeros(B, 2, 2, dtype=torch.float64), box[:, :2, 2:]], 2)).to(torch.float32)
            theta = theta.to(x.device, x.dtype)
            grid = F.affine_grid(theta, [B, 3, S, S], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        elif (H, W) != (S, S):
            x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True, align_corners=False)
        if "jitter" in steps:
            # brightness b, contrast c (towards the mean grey), saturation s (towards each pixel's
            # grey) and hue (a rotation of YIQ's chroma plane) compose into one affine colour map
            # per image: x' = M x + t, applied with a single batched matrix product.
            dev, dt = x.device, x.dtype
            b = 0.8 + 0.4 * rand(B)
            c = 0.8 + 0.4 * rand(B)
            s = 0.8 + 0.4 * rand(B)
            h = (2 * rand(B) - 1) * 0.02 * 2 * math.pi
            w = torch.tensor([0.299, 0.587, 0.114])
            mean_grey = torch.einsum("c,bc->b", w.to(dev, dt), x.mean((2, 3))).cpu()
            eye = torch.eye(3)
            sat = s.view(B, 1, 1) * eye + (1 - s).view(B, 1, 1) * torch.outer(torch.ones(3), w)
            to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
            rot = torch.zeros(B, 3, 3)
            rot[:, 0, 0] = 1
            rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = torch.cos(h), -torch.sin(h), torch.sin(h), torch.cos(h)
            hue = torch.linalg.inv(to_yiq) @ rot @ to_yiq
            M = (hue @ sat) * (b * c).view(B, 1, 1)
            t = ((1 - c) * b * mean_grey).view(B, 1, 1)  # grey is kept by saturation and hue
            Hh, Ww = x.shape[2], x.shape[3]
            x = torch.baddbmm(t.to(dev, dt).expand(B, 3, 1), M.to(dev, dt), x.reshape(B, 3, Hh * Ww))
            x = x.view(B, 3, Hh, Ww).clamp_(0, 1)
        x = photometric(x, steps, generator)
        if "noise" in steps:
            sigma = (self.noise_std * rand(B)).view(B, 1, 1, 1).to(x.device, x.dtype)
            noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            x = (x + sigma * noise).clamp_(0, 1)
        if "jpeg" in steps:
            x = jpeg(x, generator)
        return x.contiguous()
