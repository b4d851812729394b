"""Optimizers and per-step learning-rate schedules built from the config."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from omegaconf import DictConfig


def param_groups(cfg: DictConfig, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> list[dict]:
    """Parameter groups by name: ``optim.param_groups`` entries ``{keyword, lr_scale}`` take the
    parameters whose name contains the keyword (first match wins), at ``optim.lr x lr_scale``;
    everything else forms the first group at ``optim.lr``. A keyword that matches no parameter
    is an error, so a misspelt keyword cannot silently train everything at one rate; one that
    matches only frozen parameters (``model.freeze_backbone``) leaves its group out."""
    rules = list(cfg.optim.param_groups)
    groups = [{"params": [], "lr": cfg.optim.lr, "keyword": None}]
    groups += [{"params": [], "lr": cfg.optim.lr * r.lr_scale, "keyword": r.keyword} for r in rules]
    matched: set[int] = set()
    for name, p in named_params:
        hit = next((i for i, r in enumerate(rules) if r.keyword and r.keyword in name), None)
        if hit is not None:
            matched.add(hit)
        if p.requires_grad:
            groups[0 if hit is None else hit + 1]["params"].append(p)
    empty = [r.keyword for i, r in enumerate(rules) if i not in matched]
    if empty:
        raise ValueError(f"optim.param_groups: no parameter name contains {empty}; "
                         "check the keyword against the model's parameter names")
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: DictConfig, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> torch.optim.Optimizer:
    """SGD or AdamW over ``named_params`` (``module.named_parameters()``), grouped by :func:`param_groups`."""
    o = cfg.optim
    params = param_groups(cfg, named_params)
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
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps, pct_start=s.pct_start,
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
