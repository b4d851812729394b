"""Optimizers and per-step learning-rate schedules built from the config."""
from __future__ import annotations

import math

import torch
from omegaconf import DictConfig


def build_optimizer(cfg: DictConfig, params) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                               nesterov=o.nesterov and o.momentum > 0)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    raise ValueError(f"optim.name={o.name!r}: expected 'sgd' or 'adamw'")


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule stepped once per optimizer step over the whole planned run (``train.epochs``)."""
    s = cfg.sched
    total_steps = max(1, total_steps)
    if s.name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.optim.lr, total_steps=total_steps, pct_start=s.pct_start,
            anneal_strategy="cos", div_factor=s.div_factor, final_div_factor=s.final_div_factor,
            cycle_momentum=False)
    if s.name == "cosine":
        warm = int(s.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, total_steps - warm))
            return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if s.name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"sched.name={s.name!r}: expected 'onecycle', 'cosine' or 'constant'")
