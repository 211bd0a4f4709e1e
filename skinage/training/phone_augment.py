"""Augmentations that model phone photos: ``jpeg``, ``blur``, ``light`` and ``box``.

Each works on a float batch ``(B, 3, H, W)`` in [0, 1] and draws its per-image values from an explicit
``torch.Generator`` (so :class:`skinage.training.augment.BatchAugment` repeats exactly, and the per-image
augmentation of feature mode's views is seeded per view):

``jpeg``   re-compression: each image saved as a JPEG at a quality drawn uniformly from
           :data:`JPEG_QUALITY` (Pillow, 4:2:0 chroma) and decoded again (what sharing apps and phone
           galleries do);
``blur``   Gaussian blur, standard deviation drawn uniformly from [0, :data:`BLUR_SIGMA` x the side]
           pixels (defocus, a moving hand; 0 to 1.5 px at 224 px);
``light``  the light of the scene: colour temperature (red gain ``e^t``, blue gain ``e^-t``, normalised to
           keep a grey's luma, ``t`` uniform in +-:data:`LIGHT_TEMPERATURE`), contrast ``c`` around the image's
           mean luma and brightness ``b``, each uniform in :data:`LIGHT_CONTRAST` / :data:`LIGHT_BRIGHTNESS`;
``box``    jitter of the region box: the crop is cut from a crop with :data:`BOX_CONTEXT` of the box's size
           as context on every side (:func:`skinage.data.crops.context_crop`), at a scale ``e^u`` of the box
           (``u`` uniform in +-ln(1 + :data:`BOX_SCALE`)) and shifted by up to +-:data:`BOX_SHIFT` of its
           width and height (:func:`box_theta`). Only training crops carry the context; validation and
           test crops are exactly ``Preprocess.load``'s.

>>> x = torch.full((1, 3, 2, 2), 0.5)
>>> apply_light(x, torch.tensor([1.2]), torch.tensor([1.0]), torch.tensor([0.0]))[0, :, 0, 0].tolist()
[0.6000000238418579, 0.6000000238418579, 0.6000000238418579]
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PHONE_STEPS", "JPEG_QUALITY", "BLUR_SIGMA", "LIGHT_BRIGHTNESS", "LIGHT_CONTRAST", "LIGHT_TEMPERATURE",
           "BOX_CONTEXT", "BOX_SCALE", "BOX_SHIFT", "phone_params", "jpeg", "blur", "gaussian_kernels", "light",
           "apply_light", "box_theta", "rect_theta", "photometric"]

#: The steps of this module, as ``--augment`` names them.
PHONE_STEPS = ("jpeg", "blur", "light", "box")
#: JPEG quality range of ``jpeg`` (inclusive).
JPEG_QUALITY = (30, 90)
#: Largest blur standard deviation, as a fraction of the crop's side (1.5 px at 224 px).
BLUR_SIGMA = 0.0067
#: Brightness factor range of ``light``.
LIGHT_BRIGHTNESS = (0.6, 1.4)
#: Contrast factor range of ``light``.
LIGHT_CONTRAST = (0.7, 1.3)
#: Largest colour-temperature exponent of ``light`` (red gain e^t, blue gain e^-t: +-16 %).
LIGHT_TEMPERATURE = 0.15
#: Context kept around a training crop for ``box``, as a fraction of the box's width / height on each side.
BOX_CONTEXT = 0.25
#: Largest scale change of the box (+-15 %, drawn log-uniformly).
BOX_SCALE = 0.15
#: Largest shift of the box, as a fraction of its width / height.
BOX_SHIFT = 0.1

_LUMA = (0.299, 0.587, 0.114)


def phone_params() -> dict:
    """The strengths of the phone steps (part of the feature cache's key for views made with them)."""
    return {"jpeg": JPEG_QUALITY, "blur": BLUR_SIGMA, "light": (LIGHT_BRIGHTNESS, LIGHT_CONTRAST, LIGHT_TEMPERATURE),
            "box": (BOX_CONTEXT, BOX_SCALE, BOX_SHIFT)}


def _uniform(lo: float, hi: float, n: int, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------------------------- jpeg

def jpeg(x: torch.Tensor, g: torch.Generator | None = None, quality=JPEG_QUALITY) -> torch.Tensor:
    """Each image of ``x`` re-compressed as a JPEG at a quality drawn from ``quality`` (inclusive)."""
    from PIL import Image

    q = torch.randint(int(quality[0]), int(quality[1]) + 1, (len(x),), generator=g)
    u8 = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img, qi in zip(u8, q.tolist()):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img), "RGB").save(buf, format="JPEG", quality=int(qi))
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, torch.float32) / 255.0
    return y.to(x.dtype)


# --------------------------------------------------------------------------------------------- blur

def gaussian_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 2 * radius + 1) normalised Gaussian kernels; a sigma of 0 gives the identity (a 1 in the middle).

    >>> gaussian_kernels(torch.tensor([0.0, 1.0]), 1).round(decimals=4).tolist()
    [[0.0, 1.0, 0.0], [0.2741, 0.4519, 0.2741]]
    """
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    s = sigmas.to(torch.float64).view(-1, 1)
    k = torch.where(s > 0, torch.exp(-0.5 * (t / s.clamp(min=1e-12)) ** 2), (t == 0).to(torch.float64).expand(len(s), -1))
    return k / k.sum(1, keepdim=True)


def blur(x: torch.Tensor, g: torch.Generator | None = None, max_sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur, per image a standard deviation uniform in [0, ``max_sigma``] pixels
    (default ``BLUR_SIGMA`` x the side); edges reflected."""
    B, C, H, W = x.shape
    max_sigma = BLUR_SIGMA * max(H, W) if max_sigma is None else float(max_sigma)
    sig = _uniform(0.0, max_sigma, B, g)
    radius = max(1, int(math.ceil(3 * max_sigma)))
    radius = min(radius, (min(H, W) - 1))  # reflection padding needs fewer than the side
    k = gaussian_kernels(sig, radius).to(x.device, x.dtype)
    w = k.repeat_interleave(C, 0)  # (B*C, K)
    y = x.reshape(1, B * C, H, W)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), w.view(B * C, 1, 1, -1), groups=B * C)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), w.view(B * C, 1, -1, 1), groups=B * C)
    return y.view(B, C, H, W)


# --------------------------------------------------------------------------------------------- light

def apply_light(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                temperature: torch.Tensor) -> torch.Tensor:
    """Colour temperature, then contrast around the image's mean luma, then brightness; clipped to [0, 1].

    With ``g = (e^t, 1, e^-t) / (0.299 e^t + 0.587 + 0.114 e^-t)`` (a grey keeps its luma):
    ``y = clip(b * (m + c * (g * x - m)))``, ``m`` the mean luma of ``g * x``.
    """
    B = x.shape[0]
    t = temperature.to(torch.float64)
    gains = torch.stack([torch.exp(t), torch.ones_like(t), torch.exp(-t)], 1)
    gains = gains / (gains @ torch.tensor(_LUMA, dtype=torch.float64)).view(B, 1)
    y = x * gains.to(x.device, x.dtype).view(B, 3, 1, 1)
    m = torch.einsum("c,bc->b", torch.tensor(_LUMA, device=x.device, dtype=x.dtype), y.mean((2, 3))).view(B, 1, 1, 1)
    c = contrast.to(x.device, x.dtype).view(B, 1, 1, 1)
    b = brightness.to(x.device, x.dtype).view(B, 1, 1, 1)
    return (b * (m + c * (y - m))).clamp(0, 1)


def light(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """:func:`apply_light` with brightness, contrast and temperature drawn per image (in that order)."""
    B = x.shape[0]
    b = _uniform(*LIGHT_BRIGHTNESS, B, g)
    c = _uniform(*LIGHT_CONTRAST, B, g)
    t = _uniform(-LIGHT_TEMPERATURE, LIGHT_TEMPERATURE, B, g)
    return apply_light(x, b, c, t)


def photometric(x: torch.Tensor, steps, g: torch.Generator | None) -> torch.Tensor:
    """``light`` then ``blur`` (those of ``steps``), before noise; ``jpeg`` comes last, after it (the caller)."""
    if "light" in steps:
        x = light(x, g)
    if "blur" in steps:
        x = blur(x, g)
    return x


# --------------------------------------------------------------------------------------------- box

def rect_theta(rects: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None):
    """(B, 3, 3) maps from the plain crop's normalised coordinates (-1..1) into a context crop's.

    ``rects`` (B, 4): where the plain crop lies in the context crop (x0, y0, x1, y1 in -1..1); ``scale`` (B,)
    grows the box around its centre, ``shift`` (B, 2) moves it by that fraction of its width / height.

    >>> rect_theta(torch.tensor([[-0.5, -0.5, 0.5, 0.5]]))[0].tolist()
    [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
    """
    r = rects.to(torch.float64)
    B = len(r)
    hw, hh = (r[:, 2] - r[:, 0]) / 2, (r[:, 3] - r[:, 1]) / 2
    cx, cy = (r[:, 2] + r[:, 0]) / 2, (r[:, 3] + r[:, 1]) / 2
    s = torch.ones(B, dtype=torch.float64) if scale is None else scale.to(torch.float64)
    d = torch.zeros(B, 2, dtype=torch.float64) if shift is None else shift.to(torch.float64)
    m = torch.zeros(B, 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 2] = hw * s, cx + hw * 2 * d[:, 0]
    m[:, 1, 1], m[:, 1, 2] = hh * s, cy + hh * 2 * d[:, 1]
    m[:, 2, 2] = 1
    return m


def box_theta(rects: torch.Tensor, g: torch.Generator | None = None, jitter: bool = True) -> torch.Tensor:
    """:func:`rect_theta` with the box's scale and shift drawn per image (``jitter=False``: the plain crop)."""
    B = len(rects)
    if not jitter:
        return rect_theta(rects)
    u = _uniform(-math.log1p(BOX_SCALE), math.log1p(BOX_SCALE), B, g)
    shift = _uniform(-BOX_SHIFT, BOX_SHIFT, 2 * B, g).view(B, 2)
    return rect_theta(rects, torch.exp(u), shift)
