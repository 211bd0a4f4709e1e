"""Knowledge distillation: a small student learns from a trained teacher run.

The student (e.g. ``squeezenet1_1``, which has no ImageNet weights here) sees the same
augmented crop as the teacher and minimises

``(1 - alpha) * labels + alpha * T^2 * KL(teacher_T || student_T) + embed_weight * (1 - cos(P f_s, f_t))``

* the label loss is the run's own (cross-entropy with class weights, or CORN/CORAL);
* the soft-target term compares class distributions softened at temperature ``T``
  (for ordinal heads the class probabilities' logarithms play the role of logits);
* the embedding term pulls a learned linear projection ``P`` of the student's pooled
  features towards the teacher's embedding (cosine), by default *centred*: minus the
  teacher's mean embedding of the training crops. Pooled ReLU features are all positive
  and share a large common part (the embeddings of two different faces point in much the
  same direction, and so does their mean), so the uncentred loss is mostly satisfied by
  predicting the mean; centred, what is left to match is what tells one face from another.
  A teacher fine-tuned from, or frozen at, ImageNet weights thereby hands its representation
  to a student that could not download one; every epoch draws new augmentations, so over a
  run the student matches the teacher on many augmented images.

When the student trains at another size than the teacher's, the teacher sees each crop resized
to its own input size (its checkpoint's preprocessing), so its soft targets keep the quality
it has at the scale it learnt. With ``--mixup`` the teacher labels the mixed image.

The projection only exists during training (it is saved in ``last_state.pt`` for
resume, not in the student's checkpoint).

>>> import torch
>>> s = torch.tensor([[2.0, 0.0, -1.0]]); t = torch.tensor([[2.0, 0.0, -1.0]])
>>> float(soft_target_loss(torch.log_softmax(s, 1), torch.log_softmax(t, 1), 4.0))
0.0
>>> round(float(soft_target_loss(torch.log_softmax(-s, 1), torch.log_softmax(t, 1), 1.0)), 3)  # sum p log(p/q), by hand 2.47
2.47
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .device import autocast_context

__all__ = ["soft_target_loss", "embedding_loss", "log_probs", "Distiller"]


def soft_target_loss(student_logp: torch.Tensor, teacher_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` averaged over the batch (Hinton et al. 2015).

    Inputs are log class probabilities (or logits) of shape (B, K).
    """
    if student_logp.shape != teacher_logp.shape:
        raise ValueError(f"student {tuple(student_logp.shape)} and teacher {tuple(teacher_logp.shape)} outputs differ in shape")
    T = float(temperature)
    s = F.log_softmax(student_logp / T, dim=1)
    t = F.softmax(teacher_logp / T, dim=1)
    return F.kl_div(s, t, reduction="batchmean") * (T * T)


def embedding_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cosine similarity`` between projected student and teacher embeddings."""
    return (1.0 - F.cosine_similarity(projected, target, dim=1)).mean()


def log_probs(model, outputs: torch.Tensor) -> torch.Tensor:
    """Log class probabilities from a model's raw outputs (softmax or ordinal head)."""
    if getattr(model, "ordinal", None) is None:
        return F.log_softmax(outputs.float(), dim=1)
    return torch.log(model.probs_from_outputs(outputs.float()).clamp_min(1e-6))


class Distiller(nn.Module):
    """The teacher (frozen, eval) plus the trainable projection, and the combined loss."""

    def __init__(self, teacher, teacher_meta: dict, student, temperature: float = 2.0, alpha: float = 0.5,
                 embed_weight: float = 1.0, precision: str = "fp32", device: str = "cpu", channels_last: bool = True,
                 embed_center: bool = True):
        super().__init__()
        self.teacher = teacher.to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad = False
        if channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.teacher_meta = teacher_meta
        from ..preprocess import Preprocess

        pre = Preprocess.from_meta(teacher_meta)
        self.teacher_size = pre.size
        self.teacher_interp = "bicubic" if pre.interpolation == "bicubic" else "bilinear"
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.embed_weight = float(embed_weight)
        self.precision = precision
        self.device = device
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.proj = nn.Linear(student.feature_dim, teacher.feature_dim).to(device) if self.embed_weight > 0 else None
        self.embed_center = bool(embed_center) and self.proj is not None
        self.center: torch.Tensor | None = None  # the teacher's mean embedding (fit_center), subtracted from its targets
        self.last = {}

    @classmethod
    def from_run(cls, teacher_path, student, classes, **kw) -> "Distiller":
        """Load the teacher of a run folder / checkpoint and check it predicts the same classes."""
        from ..config import ConfigError
        from ..models.checkpoint import load_checkpoint

        teacher, meta = load_checkpoint(teacher_path)
        if [str(c) for c in meta["classes"]] != [str(c) for c in classes]:
            raise ConfigError(f"the teacher {teacher_path} predicts classes {meta['classes']}, this data has {list(classes)}; "
                              "distill from a teacher trained on the same classes")
        return cls(teacher, meta, student, **kw)

    def trainable_parameters(self):
        return [] if self.proj is None else list(self.proj.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def fit_center(self, x_uint8: torch.Tensor, batch_size: int = 64) -> torch.Tensor | None:
        """The teacher's mean embedding over images ``x_uint8`` (N, 3, H, W) uint8 (the plain training crops).

        Without ``embed_center`` (or without the embedding term) nothing is computed and ``None`` returned.
        """
        if not self.embed_center:
            return None
        from .augment import to_float

        total, n = None, 0
        for s in range(0, len(x_uint8), batch_size):
            x = to_float(x_uint8[s:s + batch_size]).to(self.device)
            f, _ = self.teacher_targets(x)
            total = f.sum(0) if total is None else total + f.sum(0)
            n += len(x)
        if n == 0:
            raise ValueError("fit_center needs at least one image")
        self.center = (total / n).float()
        return self.center

    def state(self) -> dict:
        st = {} if self.proj is None else {k: v.detach().clone() for k, v in self.proj.state_dict().items()}
        if self.center is not None:
            st["center"] = self.center.detach().clone()
        return st

    def load_state(self, st: dict) -> None:
        if self.proj is not None and st:
            st = dict(st)
            center = st.pop("center", None)
            if center is not None:
                self.center = center.to(self.device).float()
            self.proj.load_state_dict(st)

    @torch.no_grad()
    def teacher_targets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher embedding (B, Dt) and log class probabilities (B, K) of the same batch."""
        if self.teacher_size and x.shape[-1] != self.teacher_size:
            # the teacher sees the student's crop at the size it was trained at (same content, its scale)
            x = F.interpolate(x.float(), size=(self.teacher_size, self.teacher_size), mode=self.teacher_interp,
                              align_corners=False, antialias=x.shape[-1] > self.teacher_size).clamp_(0.0, 1.0)
        with autocast_context(self.precision, self.device):
            f = self.teacher.features(x)
            out = self.teacher.head(f)
        return f.float(), log_probs(self.teacher, out.float())

    def loss(self, x: torch.Tensor, student_feats: torch.Tensor, student_out: torch.Tensor,
             label_loss: torch.Tensor, student) -> torch.Tensor:
        f_t, logp_t = self.teacher_targets(x)
        kd = soft_target_loss(log_probs(student, student_out), logp_t, self.temperature)
        total = (1.0 - self.alpha) * label_loss + self.alpha * kd
        emb = torch.zeros(())
        if self.proj is not None:
            if self.embed_center and self.center is None:
                raise RuntimeError("embed_center is on but fit_center() was not called on the training images")
            target = f_t - self.center if self.center is not None else f_t
            emb = embedding_loss(self.proj(student_feats.float()), target)
            total = total + self.embed_weight * emb
        self.last = {"label": float(label_loss.detach()), "kd": float(kd.detach()), "embed": float(emb.detach())}
        return total

    def describe(self) -> dict:
        m = self.teacher_meta
        return {"checkpoint": m.get("checkpoint"), "model": m.get("model"), "mode": m.get("mode"),
                "temperature": self.temperature, "alpha": self.alpha, "embed_weight": self.embed_weight,
                "embed_center": self.embed_center}
