"""Typed configuration: YAML files with ``_base_`` inheritance and dotted command-line overrides.

The schema below is the single list of valid keys; OmegaConf checks every merged value's
type against it, and errors are re-worded to name the file or override, the key and the
closest valid name. Values are checked once everything is merged and resolved: named
choices and the allowed range of every number and list (:mod:`pcseg.engine.config_values`),
so a bad value is refused before any data or model is touched.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union, get_args, get_origin, get_type_hints

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (ConfigKeyError, InterpolationResolutionError, InterpolationValidationError,
                              OmegaConfBaseException)

from pcseg.engine.config_values import value_problems


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
    name: str = "spunet"  # spunet (= minkunet) | ptv3 | ptv3m2 (Sonata, Concerto) | ptv3m3 (Utonia)
    preset: Optional[str] = None  # None = the backbone's default (minkunet34c, ptv3: scannet200)
    in_channels: int = 9
    # spunet / minkunet (None = the preset's value)
    channels: Optional[List[int]] = None
    layers: Optional[List[int]] = None
    # ptv3, named as Pointcept names them so its configs port one to one (None = the preset's value);
    # the list is pcseg.models.ptv3.PTV3_KEYS (tests/test_models.py checks each has a field here)
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
    # ptv3m2 / ptv3m3 (Sonata, Concerto, Utonia): LayerScale's initial value (None: none), and
    # encoder-only output (every level's features carried up to the voxels, for linear probing)
    layer_scale: Optional[float] = None
    enc_mode: Optional[bool] = None
    # ptv3m3 (Utonia): rotary position encoding base (None: off) and its training-time coordinate
    # shift / per-axis jitter / rescale; dec_rope_enable=false keeps it out of the decoder
    rope_base: Optional[float] = None
    shift_coords: Optional[float] = None
    jitter_coords: Optional[float] = None
    rescale_coords: Optional[float] = None
    dec_rope_enable: Optional[bool] = None
    # Train only what follows the backbone (linear probing): its weights stay as loaded.
    freeze_backbone: bool = False
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
    focal_gamma: float = 0.0  # > 0: focal loss (Lin et al. 2017), e.g. 2
    # tau > 0: training logits + tau * log(point-level class prior, manifest histogram); inference
    # unchanged (logit adjustment, Menon et al. 2021; tau 1 = balanced softmax, Ren et al. 2020)
    logit_adjust: float = 0.0


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
    """The neural-collapse center regularizer (training only; see pcseg.nc.ceco). Defaults are
    the released head's (``UPerHead_ceco``) except ``weight``, see the README."""

    enabled: bool = False
    # official: the released center branch (frozen projection, log prior); learned: pcseg's
    # earlier trainable projection without prior, kept for comparison
    variant: str = "official"
    weight: float = 0.4  # lambda: total loss = point loss + weight * center loss
    dim: Optional[int] = None  # ETF width (None: official 512, learned 256); >= num_classes - 1
    reduce_dim: int = 128  # official: width of the frozen per-point reduction
    hidden: Optional[int] = None  # learned: per-point width of the projection (None = backbone width)
    scale: Optional[float] = None  # logit scale of the cosine ETF classifier (None: official 5, learned 10)
    dropout: float = 0.1  # official: dropout on the normalised centers
    trainable_projection: bool = False  # official: an ablation; the released projection is frozen
    prior: str = "scene"  # official: log of the share of training scenes holding each class | none
    # all-reduce class sums/counts across DDP ranks (None: official per process, as released; learned true)
    global_centers: Optional[bool] = None
    ema: float = 0.0  # learned: > 0 keeps running centers for classes absent from a batch


@dataclass
class RrConfig:
    """Region rebalance (Zhong et al. 2022; training only): the official CeCo branch's frozen
    projection and prior with a frozen random linear classifier instead of the normalised ETF.
    Defaults are the released ``UPerHead_cecol`` config's."""

    enabled: bool = False
    weight: float = 1.0  # total loss = point loss + weight * region loss
    dim: int = 512  # width of the frozen gain before the classifier
    reduce_dim: int = 128  # width of the frozen per-point reduction
    scale: float = 1.0  # logit scale
    smooth: float = 0.5  # target: smooth on the own class, (1 - smooth) / (K - 1) on each other
    dropout: float = 0.1  # on the region features before the classifier
    prior: str = "scene"  # log of the share of training scenes holding each class | none
    global_centers: bool = False  # per process, as released


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
    rr: RrConfig = field(default_factory=RrConfig)
    dist: DistConfig = field(default_factory=DistConfig)


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


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is Union and len(args) == 1:
        return args[0], True
    return hint, False


def _shape_problems(value: Any, hint: Any, key: str) -> list[str]:
    """Where ``value`` has the wrong kind of container for the schema (a section that is not a
    mapping, a list key given a mapping, ...): what OmegaConf reports without the key, or not at all."""
    if isinstance(value, str) and "${" in value:
        return []  # an interpolation: checked once resolved
    hint, optional = _unwrap(hint)
    if value is None:
        return [] if optional or not is_dataclass(hint) else [f"config key '{key}' is a section: give it a mapping"]
    if is_dataclass(hint):
        if not isinstance(value, dict):
            return [f"config key '{key}' is a section: give it a mapping of its keys "
                    f"(e.g. {key}: {{{fields(hint)[0].name}: ...}}), not {value!r}"[:300]]
        hints = get_type_hints(hint)
        return [p for k, v in value.items() if k in hints
                for p in _shape_problems(v, hints[k], f"{key}.{k}" if key else str(k))]
    origin = get_origin(hint)
    if origin in (list, List):
        if not isinstance(value, list):
            return [f"config key '{key}' must be a list, e.g. [a, b], not {value!r}"[:300]]
        (item,) = get_args(hint) or (Any,)
        return [p for i, v in enumerate(value) for p in _shape_problems(v, item, f"{key}[{i}]")]
    if origin in (dict, Dict) and not isinstance(value, dict):
        return [f"config key '{key}' must be a mapping (key: value), not {value!r}"[:300]]
    return []


def _check_shape(data: dict, source: str) -> None:
    problems = _shape_problems(data, Config, "")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


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
    where = f"{source}: " if source else ""
    if isinstance(exc, InterpolationResolutionError) and not isinstance(exc, InterpolationValidationError):
        return ConfigError(f"{where}config key '{key}' holds an interpolation that does not resolve ({msg}); "
                           "fix the ${...} reference or give the value itself")
    if not isinstance(exc, ConfigKeyError):
        return ConfigError(f"{where}invalid value for config key '{key}': {msg}")
    hint = f"; closest valid name: '{closest_key(str(key))}'" if closest_key(str(key)) else ""
    return ConfigError(f"{where}unknown config key '{key}'{hint}")


def _read_text(path: Path) -> str:
    """A config file's text; a folder, an unreadable file or one that is not UTF-8 is a ConfigError."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder: pass a YAML file (e.g. configs/scannet200_base.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark from a Windows editor is not part of the text
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} on line "
                          f"{line}); save it as UTF-8") from None


def _bases(data: dict, path: Path) -> list[str]:
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b.strip() for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names (relative to {path.parent}), "
                          f"got {bases!r}"[:400])
    return bases


def _load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML file merged over its ``_base_`` file(s) (paths relative to the file)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {' -> '.join(map(str, seen))}")
    try:
        data = yaml.safe_load(_read_text(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    merged: dict = {}
    for base in _bases(data, path):
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ file {base_path} not found" if not base_path.is_dir()
                              else f"{path}: _base_ {base_path} is a folder, not a YAML file")
        merged = _deep_merge(merged, _load_yaml(base_path, seen + (path,)))
    return _deep_merge(merged, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _merge(cfg: DictConfig, data: dict, source: str) -> DictConfig:
    _check_shape(data, source)
    try:
        return OmegaConf.merge(cfg, OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise _explain(exc, source) from None
    except (TypeError, ValueError) as exc:  # what OmegaConf does not wrap (e.g. incompatible containers)
        raise ConfigError(f"{source}: {exc}") from None


def _stored(data: dict) -> dict:
    """A config stored in a checkpoint. Those written before ``ceco.variant`` existed ran the head
    now called ``learned``: say so, so they resume (and compare) as what they were."""
    ceco = data.get("ceco")
    if isinstance(ceco, dict) and "variant" not in ceco:
        data = {**data, "ceco": {**ceco, "variant": "learned"}}
    return data


def load_config(path: str | Path | dict | None, overrides: list[str] | None = None) -> DictConfig:
    """Schema defaults <- YAML (with bases) <- ``key=value`` overrides, then interpolations resolved
    and every value checked (:func:`value_problems`); any problem is one ConfigError.

    ``path`` may also be an already-parsed mapping (e.g. the config stored in a checkpoint).
    The result holds no interpolations, so ``OmegaConf.to_container(cfg, resolve=True)`` cannot fail.
    """
    cfg = OmegaConf.structured(Config)
    if path is not None:
        data, source = (_stored(path), "stored config") if isinstance(path, dict) else \
            (_load_yaml(Path(path)), str(path))
        cfg = _merge(cfg, _drop_removed(data, source), source)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. train.epochs=10)")
        key = item.split("=", 1)[0].strip()
        if not all(key.split(".")):
            raise ConfigError(f"override '{item}': '{key}' is not a dotted key name (e.g. train.epochs=10)")
        if key in REMOVED_KEYS:
            raise ConfigError(f"override '{item}': config key '{key}' was removed: {REMOVED_KEYS[key][1]}")
        try:
            data = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise _explain(exc, f"override '{item}'") from None
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"override '{item}': the value is not valid YAML ({first}); quote it, "
                              "or close its brackets") from None
        cfg = _merge(cfg, data, f"override '{item}'")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise _explain(exc, "") from None
    problems = value_problems(cfg)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} invalid config values:\n  " + "\n  ".join(problems))
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


def flatten_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """A config as ``{dotted key: value}`` (interpolations resolved), e.g. to compare two runs."""
    return _flatten(cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True))


def resume_differences(stored: dict, cfg: DictConfig) -> list[str]:
    """``key: stored -> now`` for every setting that differs from a checkpoint's config,
    except :data:`RESUME_FREE_KEYS` (and their sub-keys), and the settings of an optional section
    (``ceco``, ``rr``: one with an ``enabled`` key) that is off in both."""
    now = flatten_config(cfg)
    # the stored config goes through the schema too, so defaults added later compare equal
    then = flatten_config(load_config(stored))
    free = tuple(RESUME_FREE_KEYS)
    for key in set(now) | set(then):
        section, _, leaf = key.rpartition(".")
        if leaf == "enabled" and "." not in section and not now.get(key) and not then.get(key):
            free += (section,)  # off in both runs: its settings change nothing
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
