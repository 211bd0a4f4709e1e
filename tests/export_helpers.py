"""A tiny trained run for the export / predict tests (built in seconds, no ImageNet weights).

The model is a scratch MobileNetV2 at 32 px whose linear head is fitted for a few steps on
dark vs bright images, so its probabilities are far from uniform and parity checks mean something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["dark", "bright"]
SIZE = 32


def _image(path: Path, value: int, seed: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(value + rng.integers(-25, 26, (40, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_tiny_run(root: Path, ordinal: str | None = None, steps: int = 60) -> dict:
    """Images, a manifest (train p0-p3, val p4-p5) and ``run/weights/best.*`` + ``run/args.yaml``."""
    import pandas as pd
    import torch

    from skinage.data.manifest import Manifest, write_manifest
    from skinage.models.checkpoint import save_checkpoint
    from skinage.models.model import SkinageModel

    rows = []
    for label, (cls, v) in enumerate(zip(CLASSES, (60, 190))):
        for i in range(12):
            # intermediate brightness so the two classes are not trivially separated by a constant
            value = v + (i % 4 - 1.5) * 12
            p = _image(root / "images" / cls / f"p{i % 6}_{i}.png", int(value), seed=i + 100 * label)
            rows.append({"path": str(p), "label": label, "class_name": cls, "subject": f"p{i % 6}",
                         "view": f"v{i // 6}", "split": "train" if i % 6 < 4 else "val"})
    df = pd.DataFrame(rows)
    # one val row with a bbox (top-left quarter) to exercise the crop path
    df.loc[df.index[df["split"] == "val"][0], ["x0", "y0", "x1", "y1"]] = [0.0, 0.0, 24.0, 20.0]
    manifest = root / "manifest.csv"
    write_manifest(Manifest(df, CLASSES, {"ordinal": False, "source": "test"}), manifest)

    torch.manual_seed(0)
    model = SkinageModel("mobilenet_v2", 2, ordinal=ordinal, pretrained=False).eval()
    from skinage.data.images import load_crop

    x = np.stack([load_crop(r["path"], None, size=SIZE) for r in rows])
    y = torch.tensor([r["label"] for r in rows])
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    # fit the head on standardised features, then fold the standardisation into it
    with torch.no_grad():
        raw = model.features(xt)
    mu, sd = raw.mean(0), raw.std(0) + 1e-6
    feats = (raw - mu) / sd
    head = torch.nn.Linear(feats.shape[1], 2 if ordinal is None else 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        out = head(feats)
        if ordinal is None:
            loss = torch.nn.functional.cross_entropy(out, y)
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y.float())
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = head.weight / sd
        b = head.bias - (head.weight * mu / sd).sum(1)
        lin = model.head.out
        if hasattr(lin, "coral_weights"):  # CoralLayer: shared weight + K-1 biases
            lin.coral_weights.weight.copy_(w)
            lin.coral_bias.copy_(b)
        else:
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    run = root / "run"
    save_checkpoint(model, {"classes": CLASSES, "preprocessing": {"input_size": SIZE}, "mode": "test"},
                    run / "weights" / "best")
    (run / "args.yaml").write_text(f"manifest: {manifest}\n", encoding="utf-8")
    return {"run": run, "manifest": manifest, "model": model, "rows": rows, "root": root}
