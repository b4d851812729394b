"""Config values: every number and list of the schema has a declared range, and every bad value,
file or interpolation is one ConfigError (exit 2 from the CLIs) naming the key, never a traceback."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import get_type_hints

import pytest
from omegaconf import OmegaConf

from pcseg import train as train_cli
from pcseg.engine import config as C
from pcseg.engine import config_values as V
from pcseg.engine.config import ConfigError, load_config
from tests.conftest import REPO

CFG = REPO / "configs" / "synthetic_base.yaml"
NUMERIC = (int, float)


def _leaves(cls: type, prefix: str = "") -> dict[str, object]:
    """Dotted key -> type hint of every leaf of a schema dataclass (lists of dataclasses as ``key[].leaf``)."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        hint = get_type_hints(cls)[f.name]
        base, _ = C._unwrap(hint)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(base):
            out.update(_leaves(base, key + "."))
            continue
        out[key] = base
        args = getattr(base, "__args__", ())
        if getattr(base, "__origin__", None) is list and args and dataclasses.is_dataclass(args[0]):
            out.update(_leaves(args[0], key + "[]."))
    return out


def test_every_number_and_list_of_the_schema_has_a_constraint() -> None:
    leaves = _leaves(C.Config)
    numbers = {k for k, t in leaves.items() if t in NUMERIC or getattr(t, "__origin__", None) is list}
    covered = set(V.CONSTRAINTS) | set(V.CHECKED_ELSEWHERE)
    assert numbers - covered == set(), "add these keys to CONSTRAINTS (or CHECKED_ELSEWHERE, saying why)"
    assert covered - set(leaves) == set(), "table entries for keys the schema does not have"
    assert {"train.grad_clip", "train.log_every", "train.batch_size", "data.grid_size", "train.epochs"} <= set(
        V.CONSTRAINTS)


def test_shipped_configs_and_the_defaults_load() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)
    cfg = load_config(None)
    stored = OmegaConf.to_container(cfg, resolve=True)  # what a checkpoint keeps
    assert load_config(stored) == cfg


@pytest.mark.parametrize("override,key", [
    ("train.grad_clip=-1", "train.grad_clip"),  # a negative clip factor turned training into gradient ascent
    ("train.grad_clip=0", "train.grad_clip"),
    ("train.log_every=0", "train.log_every"),  # ZeroDivisionError
    ("train.batch_size=0", "train.batch_size"),  # ZeroDivisionError
    ("data.grid_size=nan", "data.grid_size"),  # passed the `<= 0` check of GridSample
    ("data.grid_size=-0.02", "data.grid_size"),
    ("train.epochs=0", "train.epochs"),  # trained nothing and exited 0
    ("train.max_steps=0", "train.max_steps"),
    ("optim.lr=inf", "optim.lr"),
    ("optim.momentum=1.0", "optim.momentum"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("optim.betas=[0.9,1.0]", "optim.betas"),
    ("optim.param_groups=[{keyword: block, lr_scale: -0.1}]", "optim.param_groups[0].lr_scale"),
    ("sched.pct_start=0", "sched.pct_start"),
    ("sched.min_lr_ratio=1.5", "sched.min_lr_ratio"),
    ("data.color_range=[1,-1]", "data.color_range"),
    ("data.point_max=0", "data.point_max"),
    ("data.num_workers=-1", "data.num_workers"),
    ("data.loop=0", "data.loop"),
    ("data.feat_keys=[]", "data.feat_keys"),
    ("model.in_channels=0", "model.in_channels"),
    ("model.bn_momentum=0", "model.bn_momentum"),
    ("model.channels=[16,16,16]", "model.channels"),
    ("model.stride=[2,3]", "model.stride"),
    ("model.drop_path=1.0", "model.drop_path"),
    ("ceco.ema=1.0", "ceco.ema"),
    ("ceco.weight=nan", "ceco.weight"),
    ("dist.timeout_s=0", "dist.timeout_s"),
    ("seed=-1", "seed"),
])
def test_out_of_range_values_name_the_key_and_the_range(override: str, key: str, tmp_path, capsys) -> None:
    # data.root points nowhere: a value that got past the config would fail later, on the data
    assert train_cli.main(["--cfg", str(CFG), f"data.root={tmp_path / 'none'}", f"out_dir={tmp_path}", override]) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "allowed:" in err, err
    assert not (tmp_path / "config.yaml").exists()


def test_edges_and_nulls_that_mean_something_are_accepted() -> None:
    cfg = load_config(CFG, ["train.grad_clip=null", "train.eval_every=0", "model.bn_momentum=1.0",
                            "optim.momentum=0", "sched.min_lr_ratio=1", "ceco.weight=0", "train.max_steps=null",
                            "optim.param_groups=[{keyword: block, lr_scale: 0}]", "data.num_workers=0"])
    assert cfg.train.grad_clip is None and cfg.train.eval_every == 0 and cfg.model.bn_momentum == 1.0


def test_several_bad_values_are_one_message() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CFG, ["train.log_every=0", "train.batch_size=0"])
    assert "2 invalid config values" in str(info.value)
    assert "train.log_every" in str(info.value) and "train.batch_size" in str(info.value)


def test_ceco_dim_must_hold_the_simplex_of_the_classes() -> None:
    with pytest.raises(ConfigError, match=r"ceco\.dim.*>= 199"):
        load_config(CFG, ["ceco.enabled=true", "ceco.dim=32"])
    assert load_config(CFG, ["ceco.enabled=true", "ceco.dim=32", "data.label_set=segment20"]).ceco.dim == 32
    assert load_config(CFG, ["ceco.dim=32"]).ceco.dim == 32  # not used when CeCo is off


@pytest.mark.parametrize("base", ["5", "[{x: 1}]", "null", "[configs.yaml, 3]"])
def test_base_that_is_not_file_names(base: str, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_base_: {base}\ntrain:\n  epochs: 3\n")
    assert train_cli.main(["--cfg", str(bad)]) == 2  # was TypeError
    err = capsys.readouterr().err
    assert "_base_ must be a file name or a list of file names" in err and str(bad) in err


def test_missing_base_names_the_file_that_asks_for_it(tmp_path) -> None:
    bad = tmp_path / "child.yaml"
    bad.write_text("_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: _base_ file .*nowhere\.yaml not found"):
        load_config(bad)


def test_config_file_not_utf8_or_a_folder(tmp_path, capsys) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("_base_: ".encode() + str(CFG).encode() + "\nout_dir: runs/caf\xe9\n".encode("latin-1"))
    assert train_cli.main(["--cfg", str(latin1)]) == 2  # was UnicodeDecodeError
    err = capsys.readouterr().err
    assert str(latin1) in err and "not UTF-8" in err and "line 2" in err
    assert train_cli.main(["--cfg", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_byte_order_mark_is_not_part_of_the_config(tmp_path) -> None:
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + f"_base_: {CFG}\nseed: 4\n".encode())
    assert load_config(bom).seed == 4


def test_unresolvable_interpolation_names_the_key(tmp_path, capsys) -> None:
    assert train_cli.main(["--cfg", str(CFG), "train.amp=${nope}"]) == 2  # was InterpolationKeyError
    err = capsys.readouterr().err
    assert "'train.amp'" in err and "does not resolve" in err
    stored = {"train": {"amp": "${train.nothing}"}}
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(stored)
    with pytest.raises(ConfigError, match="'train.amp' is 'auto'"):  # resolves, then the choices apply
        load_config(CFG, ["train.amp=${train.device}"])


def test_interpolations_are_resolved_once_inside_load_config() -> None:
    cfg = load_config(CFG, ["out_dir=${data.root}/run", "train.val_batch_size=${train.batch_size}"])
    plain = OmegaConf.to_container(cfg)  # no resolve: nothing is left to resolve
    assert plain["out_dir"] == "data/synthetic/run" and plain["train"]["val_batch_size"] == 1
    with pytest.raises(ConfigError, match="data.grid_size"):  # the range applies to the resolved value
        load_config(CFG, ["data.grid_size=${sched.warmup_epochs}"])


@pytest.mark.parametrize("override,words", [
    ("train.epochs=[1", "not valid YAML"),  # was yaml ParserError
    ("optim.param_groups={a: 1}", "'optim.param_groups' must be a list"),  # was TypeError
    ("train=5", "'train' is a section"),  # the key was '?'
    ("data.train_transforms=[5]", "'data.train_transforms[0]' must be a mapping"),  # the key was '0'
    ("=3", "not a dotted key name"),
])
def test_malformed_overrides(override: str, words: str, capsys) -> None:
    assert train_cli.main(["--cfg", str(CFG), override]) == 2
    err = capsys.readouterr().err
    assert words in err and override in err, err


def test_section_that_is_not_a_mapping_in_a_file(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  param_groups:\n    keyword: block\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: config key 'optim\.param_groups' must be a list"):
        load_config(bad)


def test_cli_process_exits_2_without_traceback(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "pcseg.train", "--cfg", str(CFG), "train.grad_clip=-1",
                        f"data.root={tmp_path}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "'train.grad_clip' is -1.0" in r.stderr
