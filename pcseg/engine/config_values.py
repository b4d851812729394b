"""The allowed values of the config: named choices and the range of every number and list.

Checked by :func:`pcseg.engine.config.load_config` once everything is merged and resolved, so a
bad value is refused, naming the key, its value and what is allowed, before any data or model
is touched. ``tests/test_config.py`` checks that every number and list of the schema is here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf


CHOICES = {
    "data.label_set": ("segment200", "segment20"),
    "optim.name": ("sgd", "adamw"),
    "sched.name": ("onecycle", "cosine", "constant"),
    "loss.class_weights": ("none", "inverse_sqrt", "inverse_log"),
    "train.amp": ("none", "fp16", "bf16"),
    "train.device": ("auto", "cpu", "cuda"),
    "wandb.mode": ("online", "offline", "disabled"),
    "model.compat": (None, "main", "v1.5.2", "v1.5.1"),
    "model.patch_rule": (None, "flash", "non_flash"),
    "ceco.variant": ("official", "learned"),
    "ceco.prior": ("scene", "none"),
    "rr.prior": ("scene", "none"),
}


@dataclass(frozen=True)
class Num:
    """A finite number in an interval (a bound of None is open-ended); ``also`` adds a rule the
    interval cannot say (e.g. a power of two). ``note`` says what the key means or what null does."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    also: tuple[Callable[[float], bool], str] | None = None
    note: str = ""

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            text = f"in {'(' if self.open_lo else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.open_hi else ']'}"
        elif self.lo is not None:
            text = f"{'>' if self.open_lo else '>='} {_num(self.lo)}"
        elif self.hi is not None:
            text = f"{'<' if self.open_hi else '<='} {_num(self.hi)}"
        else:
            text = ""
        return ", ".join(t for t in (text, self.also[1] if self.also else "") if t)

    def allows(self, x: Any) -> bool:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.open_lo else x < self.lo):
            return False
        if self.hi is not None and (x >= self.hi if self.open_hi else x > self.hi):
            return False
        return self.also is None or self.also[0](x)

    def problem(self, value: Any) -> str | None:
        if self.allows(value):
            return None
        kind = "an integer" if isinstance(value, int) else "a finite number"
        allowed = " ".join(t for t in (kind, self.describe()) if t)
        return f"allowed: {allowed}" + (f" ({self.note})" if self.note else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Seq:
    """A list: its length (exact, or at least ``min_length``), each entry (``item``; None = not
    a number, e.g. names checked where they are used) and, with ``increasing``, strictly rising."""

    item: Num | None = None
    length: int | None = None
    min_length: int = 1
    increasing: bool = False
    note: str = ""

    def describe(self, kind: str = "finite numbers") -> str:
        count = f"{self.length}" if self.length is not None else f"{self.min_length} or more"
        what = "entries" if self.item is None else " ".join(t for t in (kind, self.item.describe()) if t)
        return f"{count} {what}" + (", strictly increasing" if self.increasing else "")

    def problem(self, value: Any) -> str | None:
        ok = isinstance(value, list) and (len(value) == self.length if self.length is not None
                                          else len(value) >= self.min_length)
        if ok and self.item is not None:
            ok = all(self.item.allows(v) for v in value)
        if ok and self.increasing:
            ok = all(a < b for a, b in zip(value, value[1:]))
        if ok:
            return None
        ints = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return f"allowed: {self.describe('integers' if ints else 'finite numbers')}" + (
            f" ({self.note})" if self.note else "")


def _power_of_two(x: float) -> bool:
    return float(x).is_integer() and int(x) > 0 and int(x) & (int(x) - 1) == 0


POSITIVE = Num(0, open_lo=True)
NON_NEGATIVE = Num(0)
AT_LEAST_1 = Num(1)
FRACTION = Num(0, 1, open_hi=True)  # [0, 1): a probability that must leave something
POSITIVE_INTS = Seq(AT_LEAST_1)

# Every number and list of the schema, checked after merging and resolving (None passes where the
# schema allows it: there it means "the default"). `test_config.py` checks the table covers them all.
CONSTRAINTS: dict[str, Num | Seq] = {
    "seed": Num(0, 2**32 - 1, note="numpy's seed range"),
    "data.grid_size": Num(0, open_lo=True, note="voxel edge in metres"),
    "data.point_max": Num(1, note="points kept per training crop"),
    "data.feat_keys": Seq(note="array names concatenated into feat, e.g. [coord, color, normal]"),
    "data.color_range": Seq(Num(), length=2, increasing=True, note="[low, high] the colours map to"),
    "data.num_workers": NON_NEGATIVE,
    "data.loop": Num(1, note="passes over the training scenes per epoch"),
    "model.in_channels": AT_LEAST_1,
    "model.channels": Seq(AT_LEAST_1, length=8, note="4 encoder then 4 decoder widths"),
    "model.layers": Seq(AT_LEAST_1, length=8, note="blocks per stage, 4 encoder then 4 decoder"),
    "model.order": Seq(note="serialization orders, e.g. [z, z-trans, hilbert, hilbert-trans]"),
    "model.stride": Seq(Num(2, also=(_power_of_two, "a power of two")), note="pooling stride per level"),
    "model.enc_depths": POSITIVE_INTS,
    "model.enc_channels": POSITIVE_INTS,
    "model.enc_num_head": POSITIVE_INTS,
    "model.enc_patch_size": POSITIVE_INTS,
    "model.dec_depths": POSITIVE_INTS,
    "model.dec_channels": POSITIVE_INTS,
    "model.dec_num_head": POSITIVE_INTS,
    "model.dec_patch_size": POSITIVE_INTS,
    "model.mlp_ratio": POSITIVE,
    "model.qk_scale": Num(0, open_lo=True, note="null = 1/sqrt(head width)"),
    "model.attn_drop": FRACTION,
    "model.proj_drop": FRACTION,
    "model.drop_path": FRACTION,
    "model.bn_momentum": Num(0, 1, open_lo=True, note="null = the backbone's 0.01"),
    "model.layer_scale": Num(0, open_lo=True, note="LayerScale's initial value; null = no LayerScale"),
    "model.rope_base": Num(0, open_lo=True, note="rotary encoding base (Utonia 10); null = none"),
    "model.shift_coords": NON_NEGATIVE,
    "model.jitter_coords": Num(1, note="per-axis coordinate scale drawn in [1/j, j]; null or 1 = off"),
    "model.rescale_coords": Num(1, note="global coordinate scale drawn in [1/r, r]; null or 1 = off"),
    "optim.lr": POSITIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.momentum": FRACTION,
    "optim.betas": Seq(FRACTION, length=2, note="AdamW's (beta1, beta2)"),
    "optim.param_groups[].lr_scale": Num(0, note="0 freezes the group; a negative rate would ascend"),
    "sched.pct_start": Num(0, 1, open_lo=True, open_hi=True, note="share of the steps spent warming up"),
    "sched.div_factor": POSITIVE,
    "sched.final_div_factor": POSITIVE,
    "sched.warmup_epochs": NON_NEGATIVE,
    "sched.min_lr_ratio": Num(0, 1),
    "loss.lovasz_weight": NON_NEGATIVE,
    "loss.focal_gamma": Num(0, 10, note="0 = plain cross-entropy; Lin et al. use 2"),
    "loss.logit_adjust": Num(0, 10, note="tau of the logit adjustment; 0 = off, 1 = balanced softmax"),
    "train.epochs": Num(1, note="an epoch count of 0 trains nothing"),
    "train.max_steps": Num(1, note="null = no early stop"),
    "train.batch_size": Num(1, note="total over all processes"),
    "train.val_batch_size": AT_LEAST_1,
    "train.eval_every": Num(0, note="epochs between validations, 0 = never"),
    "train.log_every": Num(1, note="steps between metrics.jsonl lines"),
    "train.grad_clip": Num(0, open_lo=True, note="the largest gradient norm; null = no clipping"),
    "dist.timeout_s": Num(0, 1e9, open_lo=True, note="seconds a collective waits for the other processes"),
    "ceco.weight": NON_NEGATIVE,
    "ceco.dim": Num(1, note="null = the variant's (official 512, learned 256)"),
    "ceco.reduce_dim": AT_LEAST_1,
    "ceco.dropout": FRACTION,
    "ceco.hidden": Num(1, note="null = the backbone width"),
    "ceco.scale": Num(0, open_lo=True, note="null = the variant's (official 5, learned 10)"),
    "ceco.ema": Num(0, 1, open_hi=True, note="0 = no running centers"),
    "rr.weight": NON_NEGATIVE,
    "rr.dim": AT_LEAST_1,
    "rr.reduce_dim": AT_LEAST_1,
    "rr.dropout": FRACTION,
    "rr.scale": POSITIVE,
    "rr.smooth": Num(0, 1, open_lo=True, note="the own class's share of the center target (released 0.5)"),
}

# Numbers and lists of the schema that the table leaves to the code that uses them, and why.
CHECKED_ELSEWHERE = {
    "data.train_transforms": "each transform checks its own arguments when the list is built",
    "data.val_transforms": "each transform checks its own arguments when the list is built",
    "optim.param_groups": "its entries' lr_scale is in CONSTRAINTS; keywords are matched to parameter names",
}


def _values(cfg: DictConfig, key: str) -> list[tuple[str, Any]]:
    """``(full key, plain value)`` for a table key; ``a.b[].c`` is ``c`` of every entry of list ``a.b``."""
    if "[]." in key:
        head, _, tail = key.partition("[].")
        return [(f"{head}[{i}].{k}", v) for i, entry in enumerate(OmegaConf.select(cfg, head) or [])
                for k, v in _values(entry, tail)]
    value = OmegaConf.select(cfg, key)
    return [(key, OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)]


def value_problems(cfg: DictConfig) -> list[str]:
    """Every value of a merged, resolved config that :data:`CHOICES`, :data:`CONSTRAINTS` or a
    relation between keys refuses: one line each, naming the key, its value and what is allowed."""
    problems = []
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            problems.append(f"config key '{key}' is {value!r}; expected one of {list(allowed)}")
    for key, rule in CONSTRAINTS.items():
        for full, value in _values(cfg, key):
            problem = None if value is None else rule.problem(value)
            if problem:
                problems.append(f"config key '{full}' is {value!r}; {problem}")
    if cfg.ceco.enabled and not problems:
        from pcseg.data.classes import table as class_table

        k = class_table(cfg.data.label_set).num_classes
        c = cfg.ceco
        dim = c.dim if c.dim is not None else (512 if c.variant == "official" else 256)
        if dim < k - 1:
            problems.append(f"config key 'ceco.dim' is {dim}; the simplex ETF of the {k} classes of "
                            f"data.label_set={cfg.data.label_set} needs ceco.dim >= {k - 1}")
        if c.variant == "official" and c.ema > 0:
            problems.append(f"config key 'ceco.ema' is {c.ema}; running centers belong to ceco.variant=learned "
                            "(the released head has none): set ceco.ema=0")
    return problems
