"""Precision and memory layout of a forward pass: autocast's dtype (bf16 / fp16 / float32), the
fp16 GradScaler, channels_last, and the one forward that training and inference share.
Lesson 06.
"""
from __future__ import annotations

import torch

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def resolve_amp(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for full float32.

    auto: bfloat16 on a CUDA GPU that supports it (Ampere and later: float32's range, so no
    loss scaling), float16 on older CUDA GPUs (needs a GradScaler), and off on CPU and MPS:
    there the gain depends on the processor (benchmarks/train_step.py measures it; bf16 was
    1.6x faster on our 2-core CPU) and float32 keeps the course's CPU results exactly
    reproducible. bf16 and fp16 force that type on any device. Lesson 06.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}.")
    kind = torch.device(device).type
    cuda_bf16 = kind == "cuda" and torch.cuda.is_bf16_supported()
    if amp == "auto":
        return (torch.bfloat16 if cuda_bf16 else torch.float16) if kind == "cuda" else None
    if amp == "bf16" and kind == "cuda" and not cuda_bf16:
        raise ValueError("this GPU has no bfloat16 support; use --amp fp16 (with loss scaling) or --amp off.")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def make_scaler(device: torch.device | str, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for float16: its small range turns small gradients into 0
    unless the loss is multiplied up first (and the gradients divided back before the step). Lesson 06."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=amp_dtype == torch.float16)


def use_channels_last(channels_last: bool | None, device: torch.device | str) -> bool:
    """None: channels_last on CUDA (cuDNN's fast convolution kernels want it), off elsewhere. Lesson 06."""
    return torch.device(device).type == "cuda" if channels_last is None else bool(channels_last)
