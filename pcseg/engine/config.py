"""Typed configuration: YAML files with ``_base_`` inheritance and dotted command-line overrides.

The schema below is the single list of valid keys; OmegaConf checks every merged value
against it, and errors are re-worded to name the file or override, the key and the
closest valid name.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException


@dataclass
class DataConfig:
    root: str = "data/scannet200"
    label_set: str = "segment200"  # segment200 | segment20
    train_split: str = "train"
    val_split: str = "val"
    grid_size: float = 0.02
    point_max: int = 100000
    # Input features of the standard recipes: concatenated into `feat` (3 channels each);
    # model.in_channels must match. Used when *_transforms are None.
    feat_keys: List[str] = field(default_factory=lambda: ["coord", "color", "normal"])
    color_range: List[float] = field(default_factory=lambda: [-1.0, 1.0])  # [0, 1] for Pointcept >= v1.6 weights
    # None = the standard ScanNet recipe (pcseg.data.transforms.default_*_transforms)
    train_transforms: Optional[List[Dict[str, Any]]] = None
    val_transforms: Optional[List[Dict[str, Any]]] = None
    num_workers: int = 2
    loop: int = 1  # passes over the training scenes per epoch


@dataclass
class ModelConfig:
    name: str = "spunet"  # spunet (= minkunet) | ptv3
    preset: Optional[str] = None  # None = the backbone's default (minkunet34c, ptv3: scannet200)
    in_channels: int = 9
    # spunet / minkunet (None = the preset's value)
    channels: Optional[List[int]] = None
    layers: Optional[List[int]] = None
    # ptv3, named as Pointcept names them so its configs port one to one (None = the preset's value)
    order: Optional[List[str]] = None
    stride: Optional[List[int]] = None
    enc_depths: Optional[List[int]] = None
    enc_channels: Optional[List[int]] = None
    enc_num_head: Optional[List[int]] = None
    enc_patch_size: Optional[List[int]] = None
    dec_depths: Optional[List[int]] = None
    dec_channels: Optional[List[int]] = None
    dec_num_head: Optional[List[int]] = None
    dec_patch_size: Optional[List[int]] = None
    mlp_ratio: Optional[float] = None
    qkv_bias: Optional[bool] = None
    qk_scale: Optional[float] = None
    attn_drop: Optional[float] = None
    proj_drop: Optional[float] = None
    drop_path: Optional[float] = None
    pre_norm: Optional[bool] = None
    shuffle_orders: Optional[bool] = None
    # The Pointcept release the weights come from: main (>= v1.6) | v1.5.2 | v1.5.1 (see pcseg.models.ptv3)
    compat: Optional[str] = None
    # Patches of scenes shorter than a patch: flash (each scene alone, how the published weights
    # were trained) | non_flash (Pointcept's fallback: patch = the smallest scene of the batch)
    patch_rule: Optional[str] = None
    # BatchNorm running-statistics momentum (None = the backbone's, 0.01 as in Pointcept's recipes).
    # A run of a few hundred steps needs more (e.g. 0.1): at 0.01 the statistics used in
    # evaluation still remember the first steps' features.
    bn_momentum: Optional[float] = None


@dataclass
class ParamGroupConfig:
    keyword: str = ""  # parameters whose name contains this ...
    lr_scale: float = 1.0  # ... train at optim.lr x lr_scale


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    # e.g. [{keyword: block, lr_scale: 0.1}]: first matching keyword wins; the rest use optim.lr
    param_groups: List[ParamGroupConfig] = field(default_factory=list)


@dataclass
class SchedConfig:
    name: str = "onecycle"  # onecycle | cosine | constant
    pct_start: float = 0.05
    div_factor: float = 10.0
    final_div_factor: float = 1000.0
    warmup_epochs: float = 0.0  # cosine only
    min_lr_ratio: float = 0.0  # cosine only


@dataclass
class LossConfig:
    class_weights: str = "none"  # none | inverse_sqrt | inverse_log (from the manifest histogram)
    lovasz_weight: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 800
    max_steps: Optional[int] = None  # stop early; the schedule still follows `epochs`
    batch_size: int = 12  # total over all processes
    val_batch_size: int = 1
    eval_every: int = 1  # epochs between validations (0 = never)
    log_every: int = 10  # steps between metrics.jsonl lines
    amp: str = "none"  # none | fp16 | bf16 (CUDA only)
    grad_clip: Optional[float] = None
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    # Start from this pcseg checkpoint's model weights (not its optimizer or schedule); the
    # classifier is kept when the classes match. Ignored when resuming an out_dir's last.pth.
    init_from: Optional[str] = None
    sync_bn: bool = False  # BatchNorm statistics over all processes' batches (DDP)


@dataclass
class DistConfig:
    # Seconds a collective waits for the other processes; after that (a rank died or hangs)
    # every process fails instead of waiting forever.
    timeout_s: float = 1800.0


@dataclass
class WandbConfig:
    mode: str = "offline"  # online | offline | disabled
    project: str = "pcseg"
    name: Optional[str] = None
    entity: Optional[str] = None


@dataclass
class CecoConfig:
    """The neural-collapse center regularizer (training only; see pcseg.nc.ceco)."""

    enabled: bool = False
    weight: float = 0.4  # lambda: total loss = point loss + weight * center loss
    dim: int = 256  # projection width; must be >= num_classes - 1 for the simplex ETF
    hidden: Optional[int] = None  # per-point width of the projection (None = backbone width)
    scale: float = 10.0  # logit scale of the cosine ETF classifier
    global_centers: bool = True  # all-reduce class sums/counts across DDP ranks
    ema: float = 0.0  # > 0: running centers for classes absent from a batch


@dataclass
class Config:
    seed: int = 0
    out_dir: str = "runs/default"
    resume: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    ceco: CecoConfig = field(default_factory=CecoConfig)
    dist: DistConfig = field(default_factory=DistConfig)


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
}


class ConfigError(ValueError):
    """A config file or override is invalid; the message says where and how to fix it."""


# Keys that existed once: dropped when they hold the only value that ever worked (old
# checkpoints' stored configs keep loading), an error saying why otherwise.
REMOVED_KEYS: dict[str, tuple[Any, str]] = {
    "loss.ignore_index": (-1, "unlabelled points are always -1 (the caches' convention, "
                              "pcseg.data.dataset.IGNORE_INDEX); delete the key"),
}


def _drop_removed(data: dict, source: str) -> dict:
    for key, (legacy, why) in REMOVED_KEYS.items():
        parent, _, leaf = key.rpartition(".")
        node = data.get(parent) if parent else data
        if isinstance(node, dict) and leaf in node:
            if node[leaf] != legacy:
                raise ConfigError(f"{source}: config key '{key}' was removed: {why}")
            node = dict(node)
            node.pop(leaf)
            data = {**data, parent: node} if parent else node
    return data


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            try:
                child = node._get_node(k)
            except Exception:
                continue
            if isinstance(child, DictConfig) and child._metadata.object_type is not dict:
                keys.extend(_all_keys(child, full + "."))
    return keys


def closest_key(key: str) -> str | None:
    """The valid dotted key a mistyped one most likely meant: a key whose last part is the
    same (``train.lr`` -> ``optim.lr``), else the most similar full key (``train.epoch`` ->
    ``train.epochs``). Section names alone are never suggested for a leaf."""
    structured = OmegaConf.structured(Config)
    valid = [k for k in _all_keys(structured) if not isinstance(OmegaConf.select(structured, k), DictConfig)]
    leaf = key.split(".")[-1]
    same_leaf = [k for k in valid if k.split(".")[-1] == leaf]
    if same_leaf:
        return max(same_leaf, key=lambda k: difflib.SequenceMatcher(None, key, k).ratio())
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return close[0]
    leaves = difflib.get_close_matches(leaf, [k.split(".")[-1] for k in valid], n=1)
    return next((k for k in valid if leaves and k.split(".")[-1] == leaves[0]), None)


def _explain(exc: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or "?"
    msg = str(exc).split("\n")[0]
    if not isinstance(exc, ConfigKeyError):
        return ConfigError(f"{source}: invalid value for config key '{key}': {msg}")
    hint = f"; closest valid name: '{closest_key(str(key))}'" if closest_key(str(key)) else ""
    return ConfigError(f"{source}: unknown config key '{key}'{hint}")


def _load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML file merged over its ``_base_`` file(s) (paths relative to the file)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {' -> '.join(map(str, seen))}")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, _load_yaml(path.parent / base, seen + (path,)))
    return _deep_merge(merged, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | dict | None, overrides: list[str] | None = None) -> DictConfig:
    """Schema defaults <- YAML (with bases) <- ``key=value`` overrides, validated at every step.

    ``path`` may also be an already-parsed mapping (e.g. the config stored in a checkpoint).
    """
    cfg = OmegaConf.structured(Config)
    if path is not None:
        data, source = (path, "stored config") if isinstance(path, dict) else (_load_yaml(Path(path)), str(path))
        data = _drop_removed(data, source)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(data))
        except OmegaConfBaseException as exc:
            raise _explain(exc, source) from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. train.epochs=10)")
        key = item.split("=", 1)[0].strip()
        if key in REMOVED_KEYS:
            raise ConfigError(f"override '{item}': config key '{key}' was removed: {REMOVED_KEYS[key][1]}")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise _explain(exc, f"override '{item}'") from None
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; expected one of {list(allowed)}")
    return cfg


# Keys that may change between a run and its resumption: where things are, how much is
# logged, when to stop. Any other difference would silently mix two experiments.
RESUME_FREE_KEYS = ("resume", "out_dir", "data.root", "data.num_workers", "train.max_steps", "train.progress",
                    "train.log_every", "train.eval_every", "train.val_batch_size", "train.device",
                    "train.init_from", "dist", "wandb")


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def resume_differences(stored: dict, cfg: DictConfig) -> list[str]:
    """``key: stored -> now`` for every setting that differs from a checkpoint's config,
    except :data:`RESUME_FREE_KEYS` (and their sub-keys)."""
    now = _flatten(OmegaConf.to_container(cfg, resolve=True))
    # the stored config goes through the schema too, so defaults added later compare equal
    then = _flatten(OmegaConf.to_container(load_config(stored), resolve=True))
    free = tuple(RESUME_FREE_KEYS)
    diffs = []
    for key in sorted(set(now) | set(then)):
        if any(key == f or key.startswith(f + ".") for f in free):
            continue
        if now.get(key) != then.get(key):
            diffs.append(f"{key}: {then.get(key)!r} -> {now.get(key)!r}")
    return diffs


def save_config(cfg: DictConfig, path: str | Path) -> None:
    """Write the resolved config (atomically) so a run can be repeated from its folder."""
    from pcseg.utils.atomic import atomic_write_text

    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))
