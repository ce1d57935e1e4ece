"""Instance-to-instance distillation between the two members of a pair, in pure torch.

Each member gives logits for the same class c (a region's mean logits, or an instance's class
logits). The member more confident in c, by its own ``softmax(z / T)[c]``, teaches; its
distribution is the target (no gradient) of the other: ``T² · KL(p_teacher ‖ p_student)``.
Everything is computed in float32, whatever the autocast dtype.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def pick_teacher(logits_a: Tensor, logits_b: Tensor, classes: Tensor,
                 temperature: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split two members' (N, C) logits into teacher log-probabilities (detached), student
    logits and a mask that is True where A teaches (ties: A teaches).

    Returns ``(log_p_teacher, student_logits, a_teaches, log_p_a_and_b)``; the last is the
    stacked float32 log-probabilities of A and B, shape (2, N, C).
    """
    log_p = F.log_softmax(torch.stack([logits_a, logits_b]).float() / temperature, dim=-1)
    conf = log_p.gather(-1, classes.view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
    a_teaches = conf[0] >= conf[1]
    log_p_teacher = torch.where(a_teaches[:, None], log_p[0], log_p[1]).detach()
    student = torch.where(a_teaches[:, None], logits_b, logits_a)
    return log_p_teacher, student, a_teaches, log_p


def paired_kl(logits_a: Tensor, logits_b: Tensor, classes: Tensor,
              temperature: float = 4.0) -> Tensor:
    """Mean over N pairs of ``T² · KL(p_teacher ‖ p_student)``; a zero attached to the graph
    when N is 0.

    Args:
        logits_a, logits_b: (N, C) logits of the two members, pair k in row k.
        classes: (N,) the class each pair shares; it decides who teaches.
        temperature: T, softening both distributions.
    """
    if logits_a.shape[0] == 0:
        return zero_like(logits_a, logits_b)
    log_p_teacher, student, _, _ = pick_teacher(logits_a, logits_b, classes, temperature)
    log_p_student = F.log_softmax(student.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction='none').sum(-1)
    return kl.mean() * temperature**2


def region_to_pixel_kl(region_a: Tensor, region_b: Tensor, classes: Tensor,
                       pixels_a: Tensor, owner_a: Tensor, pixels_b: Tensor, owner_b: Tensor,
                       temperature: float = 4.0) -> Tensor:
    """``pixel`` mode: the teacher's region distribution is the target of every student pixel
    of that region. Mean over all student pixels of ``T² · KL(p_teacher ‖ p_student(pixel))``.

    Args:
        region_a, region_b: (N, C) region mean logits of the two members; they pick the teacher.
        classes: (N,) the class of each region pair.
        pixels_a, pixels_b: (P_a, C) / (P_b, C) logits of the members' pixels in those regions.
        owner_a, owner_b: (P_a,) / (P_b,) which region pair (0..N-1) each pixel belongs to.
    """
    if region_a.shape[0] == 0:
        return zero_like(region_a, region_b, pixels_a, pixels_b)
    log_p_teacher, _, a_teaches, _ = pick_teacher(region_a, region_b, classes, temperature)
    # A's pixels learn where B teaches, B's pixels where A teaches.
    pix = torch.cat([pixels_a[~a_teaches[owner_a]], pixels_b[a_teaches[owner_b]]])
    own = torch.cat([owner_a[~a_teaches[owner_a]], owner_b[a_teaches[owner_b]]])
    if pix.shape[0] == 0:
        return zero_like(region_a, region_b, pixels_a, pixels_b)
    log_p_student = F.log_softmax(pix.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher[own], log_target=True, reduction='none').sum(-1)
    return kl.mean() * temperature**2


def zero_like(*tensors: Tensor) -> Tensor:
    """A float32 zero that stays attached to the graph of ``tensors`` (so DDP sees every
    parameter used and backward passes through)."""
    return sum(t.float().sum() for t in tensors) * 0.0
