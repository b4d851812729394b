"""Synthetic ScanNet-format scenes, generated once and converted by the real data preparation:
the data of ``python -m pcseg.demo`` and of the studies in ``bench/``."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["SyntheticDataError", "synthetic_caches"]


class SyntheticDataError(RuntimeError):
    """The folder holds other synthetic data, or the conversion failed: the message says which."""


def synthetic_caches(raw: Path, caches: Path, scenes: int, seed: int, size: str = "default", workers: int = 1,
                     tag: str = "[study]", progress: bool = False) -> Path:
    """Generate ``scenes`` scenes (seed, size) into ``raw`` unless they are there, and convert them
    into ``caches`` (data prep skips scenes already up to date). A ``raw`` folder generated with
    other settings is refused rather than mixed. Returns ``caches``."""
    from pcseg.data.prep import main as prep_main
    from pcseg.data.synthetic import write_release
    from pcseg.utils.atomic import atomic_write_text

    spec = {"scenes": scenes, "seed": seed, "size": size}
    stamp = raw.parent / f"{raw.name}.synthetic.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != spec:
        raise SyntheticDataError(f"{raw} holds other synthetic data ({stamp.read_text().strip()}), not {spec}: "
                                 "use another output folder or the same scene count, seed and size")
    if not (raw / "scannetv2_train.txt").is_file():
        print(f"{tag} generating {scenes} synthetic scenes (seed {seed}) -> {raw}", flush=True)
        raw.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps(spec))
        write_release(raw, num_scenes=scenes, seed=seed, size=size, workers=workers)
    print(f"{tag} converting -> {caches}", flush=True)
    args = ["--raw", str(raw), "--out", str(caches), "--workers", str(workers)]
    code = prep_main(args + ([] if progress else ["--no-progress"]))
    if code != 0:
        raise SyntheticDataError(f"data preparation failed (exit {code}); see the messages above")
    return caches
