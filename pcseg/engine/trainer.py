"""The training loop: one code path for CPU, one GPU and DDP over N processes.

State that must survive an interruption (model, optimizer, schedule, AMP scaler, step,
RNGs) goes into ``last.pth`` atomically; the data order of an epoch is a function of
(seed, epoch), so a resumed run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from pcseg.data.cache_check import SceneDataError
from pcseg.data.classes import table as class_table
from pcseg.data.dataset import SceneCacheDataset
from pcseg.data.loader import build_loader
from pcseg.data.manifest import read_manifest
from pcseg.data.pipelines import train_transform_list, val_transform_list
from pcseg.data.sampler import ResumableSampler
from pcseg.data.transforms import build_transforms
from pcseg.engine import distributed as D
from pcseg.engine.checkpoint import (load_checkpoint, model_state, rng_state, save_checkpoint, set_rng_state,
                                     term_states)
from pcseg.engine.config import resume_differences, save_config
from pcseg.engine.init_from import load_initial_weights
from pcseg.engine.logger import MetricsWriter, get_logger
from pcseg.engine.objective import build_objective, scene_prior_source
from pcseg.engine.optim import build_optimizer, build_scheduler
from pcseg.engine.sync_bn import convert_sync_bn
from pcseg.eval.metrics import ConfusionMatrix, format_table, summarize
from pcseg.models.from_config import build_model_from_cfg
from pcseg.models.objective import TrainingModel
from pcseg.models.spconv_compat import set_conv_algo
from pcseg.nc.metrics import pairwise_cosines
from pcseg.nc.terms import TermContext
from pcseg.utils.amp import amp_dtype
from pcseg.utils.device import resolve_device


def _upper(cos: np.ndarray) -> np.ndarray:
    return cos[np.triu_indices(len(cos), 1)]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is left untouched."""


class StopRequested(RuntimeError):
    """SIGUSR1/SIGTERM arrived (e.g. before a SLURM time limit): ``last.pth`` holds the state after
    the last finished step, and a new run in the same out_dir continues from it."""

    def __init__(self, signum: int, step: int, path: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; {path} holds the state, "
                         "the same command continues the run")
        self.signum = signum


STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


def build_datasets(cfg: DictConfig) -> tuple[SceneCacheDataset, SceneCacheDataset | None]:
    d = cfg.data
    root = Path(d.root)
    train_tf = train_transform_list(cfg)
    val_tf = val_transform_list(cfg)
    train = SceneCacheDataset(root, d.train_split, label_set=d.label_set, transforms=build_transforms(list(train_tf)),
                              seed=cfg.seed, loop=d.loop)
    val = None
    if cfg.train.eval_every > 0:
        val = SceneCacheDataset(root, d.val_split, label_set=d.label_set, transforms=build_transforms(list(val_tf)),
                                seed=cfg.seed)
    return train, val


class Trainer:
    """Builds everything a run needs, then :meth:`fit` trains it.

    Set-up is a list of build steps (:meth:`build_loaders`, :meth:`build_model`,
    :meth:`build_objective`, :meth:`build_optimizer`, :meth:`restore`, :meth:`open_run`), each
    overridable. Everything that can be refused (config values, data, checkpoints to resume or
    start from) is checked while building, before the out_dir, ``train.log`` or
    ``config.yaml`` is created: a refused run leaves no trace.

    The loop itself is small (:meth:`_fit`): a step, then the duties after a step, then at an
    epoch's end the duties of the epoch. Their order, and why:

    * after a step (:meth:`after_step`): log the step, then honour a stop request (it saves
      ``last.pth``; the epoch's duties, if this step ended one, are left to the resumed run so
      a stop stays prompt);
    * after an epoch (:meth:`after_epoch`): validate (when due), write ``best.pth`` if it
      improved, write ``last.pth``, then honour a stop request. ``last.pth`` comes after the
      validation so that it records the epoch as done, and a resumed run neither repeats nor
      skips it; best.pth and last.pth are the same state, so a crash between the two writes
      loses nothing; the stop comes last so it never cuts a save short.

    Whatever step a run stops at, stop + resume gives the validation records and best.pth of
    the uninterrupted run. The trainer names no training method: the point loss and any
    auxiliary terms come from :func:`pcseg.engine.objective.build_objective`.
    """

    def __init__(self, cfg: DictConfig, dist: D.DistInfo | None = None) -> None:
        self.cfg = cfg
        self.dist = dist or D.current()
        self.device = resolve_device(cfg.train.device)
        self.out_dir = Path(cfg.out_dir)
        self.log = get_logger(None, self.dist.is_main)  # console only until the run is accepted
        self._notes: list[str] = []  # set-up messages for train.log, written once it exists
        self._stop_signal: int | None = None
        # An out_dir with a last.pth is continued automatically, but only by the same experiment:
        # checked before anything in the folder is touched.
        self._resume_state = self._previous_run(self.out_dir / "last.pth")
        torch.manual_seed(cfg.seed + self.dist.rank)
        np.random.seed((cfg.seed + self.dist.rank) % 2**32)
        self.table = class_table(cfg.data.label_set)
        self.manifest = read_manifest(Path(cfg.data.root))
        self.build_loaders()
        self.build_model()
        self.build_objective()
        self.build_optimizer()
        self.restore()
        self.open_run()

    # ------------------------------------------------------------------ build steps
    def build_loaders(self) -> None:
        """Datasets, the resumable sampler and the loaders; the batch split over processes."""
        cfg, t = self.cfg, self.cfg.train
        if t.batch_size % self.dist.world_size:
            raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the number of processes "
                             f"({self.dist.world_size})")
        self.batch_per_rank = t.batch_size // self.dist.world_size
        self.train_set, self.val_set = build_datasets(cfg)
        self.sampler = ResumableSampler(len(self.train_set), shuffle=True, seed=cfg.seed, rank=self.dist.rank,
                                        world_size=self.dist.world_size)
        self.steps_per_epoch = len(self.sampler) // self.batch_per_rank
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training scenes give no full batch of {self.batch_per_rank} per "
                             f"process: lower train.batch_size or add scenes")
        self.total_steps = self.steps_per_epoch * t.epochs
        nw, pin = cfg.data.num_workers, self.device.type == "cuda"
        self.train_loader = build_loader(self.train_set, self.batch_per_rank, shuffle=True, num_workers=nw,
                                         seed=cfg.seed, drop_last=True, pin_memory=pin, sampler=self.sampler)
        self.val_loader = None
        if self.val_set is not None:
            shard = list(range(len(self.val_set)))[self.dist.rank::self.dist.world_size]
            self.val_loader = build_loader(self.val_set, t.val_batch_size, shuffle=False, num_workers=nw,
                                           seed=cfg.seed, pin_memory=pin, sampler=shard)

    def build_model(self) -> None:
        """The segmentor (SyncBN under DDP if asked, ``train.init_from`` weights for a new run)."""
        t = self.cfg.train
        self.model = build_model_from_cfg(self.cfg)
        if t.sync_bn and self.dist.enabled:
            self.model = convert_sync_bn(self.model, self.device)
        if t.init_from and self._resume_state is None:  # a resumed fine-tune continues from its own last.pth
            self._init_from(Path(t.init_from))
        self.model = set_conv_algo(self.model.to(self.device), self.device)

    def build_objective(self) -> None:
        """The point loss and the auxiliary terms (:func:`build_objective`), and the module that
        trains them together: the segmentor plus the terms, wrapped by DDP under torch.distributed."""
        cfg = self.cfg
        prior = scene_prior_source(cfg, self.manifest, self.train_set.scene_dirs, self.table.num_classes,
                                   self._notes.append)
        ctx = TermContext(self.model.feat_dim, self.table.num_classes, cfg.seed, prior)
        self.objective = build_objective(cfg, ctx, self.manifest, self._global_normalizer).to(self.device)
        self.core = TrainingModel(self.model, self.objective.terms).to(self.device)
        self.train_model: torch.nn.Module = self.core
        if self.dist.enabled:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.core, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=False)

    def build_optimizer(self) -> None:
        """Optimizer, schedule and AMP over everything that trains (segmentor and terms)."""
        cfg, t = self.cfg, self.cfg.train
        self.optimizer = build_optimizer(cfg, self.core.named_parameters())
        # Everything the optimizer updates (segmentor and terms): clipped and checked together.
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.scheduler = build_scheduler(cfg, self.optimizer, self.total_steps, self.steps_per_epoch)
        self.amp_dtype = amp_dtype(t.amp, self.device)  # None off CUDA: the CPU runs in fp32
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

    def restore(self) -> None:
        """The run's counters, and the state of the run this out_dir holds (if any)."""
        self.step = 0
        # Epochs whose end-of-epoch duties (validation, best.pth) are done. A stop on an epoch's
        # last step saves before them; the resumed run does them first (see _end_of_epoch_pending).
        self.epochs_done = 0
        self.best_miou = -1.0
        if self._resume_state is not None:
            self._resume(self._resume_state)
            self._resume_state = None  # no second copy of the weights in memory
        elif self.cfg.resume:
            self._notes.append(f"resume requested but {self.out_dir / 'last.pth'} does not exist: starting from "
                               "scratch")

    def open_run(self) -> None:
        """The run is accepted: only now does anything appear on disk (train.log, config.yaml,
        metrics.jsonl trimmed to the resumed step)."""
        self.log = get_logger(self.out_dir, self.dist.is_main)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.out_dir / "config.yaml")
        self.metrics = MetricsWriter(self.out_dir, self.cfg, enabled=self.dist.is_main)
        if self.step > 0:  # records a crashed run wrote after its last checkpoint would appear twice
            self.metrics.keep_until(self.step, keep_val=not self._end_of_epoch_pending())
        for note in self._notes:
            self.log.info("%s", note)

    # ------------------------------------------------------------------ set-up helpers
    def _global_normalizer(self, denom: torch.Tensor) -> torch.Tensor:
        """The point loss's denominator over the global batch (all ranks), per process, so the
        DDP gradient is that of the whole batch, not a mean of per-rank means."""
        if self.dist.enabled:
            torch.distributed.all_reduce(denom)
            denom = denom / self.dist.world_size
        return denom

    def _init_from(self, path: Path) -> None:
        """Start from another run's, a converted or a pretrained encoder's weights
        (:func:`pcseg.engine.init_from.load_initial_weights`); optimizer and schedule start fresh."""
        self._notes.append(load_initial_weights(self.model, path, self.cfg))

    def _previous_run(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint to continue from, if ``path`` exists; an error if it was written with
        other settings (see ``RESUME_FREE_KEYS`` for what may change)."""
        if not path.is_file():
            return None
        ckpt = load_checkpoint(path, map_location="cpu")
        self._check_same_run(path, ckpt)
        return ckpt

    def _check_same_run(self, path: Path, ckpt: dict[str, Any]) -> None:
        stored = ckpt.get("config")
        diffs = resume_differences(stored, self.cfg) if isinstance(stored, dict) else ["(no config stored)"]
        if diffs:
            raise ValueError(f"{path} belongs to a run with other settings, so it is not continued:\n  "
                             + "\n  ".join(diffs[:20]) + f"\nuse another out_dir (or move {path} away) for a new "
                             "run, or restore those values to continue this one")

    def _resume(self, ckpt: dict[str, Any]) -> None:
        path = self.out_dir / "last.pth"  # its config equals ours (checked in _previous_run)
        if isinstance(ckpt["rng"], list) and len(ckpt["rng"]) != self.dist.world_size:
            raise ValueError(f"{path} was written by {len(ckpt['rng'])} processes; resume it with the same number "
                             f"(now {self.dist.world_size})")
        try:
            self.model.load_state_dict(ckpt["model"])
            if self.objective.terms:
                self.objective.load_state_dict(term_states(ckpt))
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{path} does not fit this config ({str(exc).splitlines()[0]}); resume with the "
                             f"config it was trained with ({self.out_dir / 'config.yaml'}) or start a new "
                             f"out_dir") from None
        self.scheduler.load_state_dict(ckpt["scheduler"])
        # A run saved without fp16 (CPU, amp=none, bf16) has an empty scaler state: fp16 then
        # starts from a fresh scale, which is what a new fp16 run does too.
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        # checkpoints of earlier versions were always saved after their epoch-end duties
        self.epochs_done = int(ckpt.get("epochs_done", self.step // self.steps_per_epoch))
        self.best_miou = float(ckpt.get("best_miou", -1.0))
        rng = ckpt["rng"][self.dist.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"]
        set_rng_state(rng)
        self._notes.append(f"resumed from {path} at step {self.step} (epoch {self.step // self.steps_per_epoch})"
                           + (": the validation of that epoch comes first" if self._end_of_epoch_pending() else ""))

    def _checkpoint_state(self) -> dict[str, Any]:
        rng = rng_state()
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        state: dict[str, Any] = {
            "model": model_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "epochs_done": self.epochs_done,
            "best_miou": self.best_miou,
            "rng": rng,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "num_classes": self.table.num_classes,
            "label_set": self.cfg.data.label_set,
        }
        if self.objective.terms:  # kept apart from the segmentor: inference never needs them
            state["terms"] = self.objective.state_dict()
        return state

    def save(self, name: str = "last.pth", state: dict[str, Any] | None = None) -> None:
        state = state if state is not None else self._checkpoint_state()
        if self.dist.is_main:
            self.metrics.sync()
            save_checkpoint(self.out_dir / name, state)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        nb = self.device.type == "cuda"
        return {k: (v.to(self.device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    # ------------------------------------------------------------------ training
    def compute_loss(self, out: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and the scalars to log, from the objective (point loss + terms)."""
        return self.objective.total(out, batch["segment"])

    def _diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} at step {self.step + 1} (epoch {self.step // self.steps_per_epoch}); the weights were not "
            f"updated and the last good checkpoint {self.out_dir / 'last.pth'} was left as it was. Lower "
            f"optim.lr, set train.grad_clip, or check the data")

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        self.train_model.train()
        batch = self._to_device(batch)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            extra = {"segment": batch["segment"]} if self.objective.terms else {}
            out = self.train_model(batch["grid_coord"], batch["batch"], batch["feat"], coord=batch.get("coord"),
                                   **extra)
            loss, logs = self.compute_loss(out, batch)
        if not D.all_ranks(bool(torch.isfinite(loss.detach())), self.device):
            raise self._diverged(f"non-finite loss ({float(loss.detach())})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # no-op unless fp16
        # The total norm of every gradient the optimizer uses (clipped when train.grad_clip is set).
        norm = torch.nn.utils.clip_grad_norm_(self.params, float("inf") if self.cfg.train.grad_clip is None
                                              else self.cfg.train.grad_clip)
        finite = D.all_ranks(bool(torch.isfinite(norm)), self.device)
        if not self.scaler.is_enabled() and not finite:
            raise self._diverged(f"non-finite gradient (norm {float(norm)}) from a finite loss")
        # fp16: the scaler skips the step on inf/NaN gradients and lowers its scale; the schedule
        # then waits too, so it counts optimizer steps.
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if finite:
            self.scheduler.step()
        self.step += 1
        logs["loss"] = float(loss.detach())
        logs["grad_norm"] = float(norm)
        if self.step % self.cfg.train.log_every == 0:
            logs.update(self._quick_nc(out["feat"].detach(), batch["segment"]))
        return logs

    @torch.no_grad()
    def _quick_nc(self, feat: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Cheap collapse numbers for the log: equiangularity (std of pairwise cosines)
        of the classifier rows and of this batch's globally-centred class centers."""
        from pcseg.nc.centers import class_centers

        centers, present = class_centers(feat.float(), labels, self.table.num_classes)
        m = centers[present]
        out = {"equiangularity_classifier": float(np.nanstd(_upper(pairwise_cosines(self.model.head.weight))))}
        # always present (NaN when undefined) so every DDP rank reduces the same keys
        out["equiangularity_batch_centers"] = (
            float(np.std(_upper(pairwise_cosines(m - m.mean(0))))) if len(m) >= 2 else float("nan"))
        return out

    def fit(self) -> dict[str, Any]:
        """Train until ``train.epochs`` (or ``train.max_steps``); returns the last validation metrics."""
        t = self.cfg.train
        max_steps = t.max_steps if t.max_steps is not None else self.total_steps
        max_steps = min(max_steps, self.total_steps)
        previous = self._install_stop_handlers()
        try:
            return self._fit(max_steps)
        except StopRequested:
            previous = {}  # stopping: further stop signals (e.g. srun's to the other tasks) are ignored
            raise
        except SceneDataError:
            # A scene with bad values (the headers were checked at set-up): the weights are those
            # after the last finished step, so keep them; the rerun continues once the data is fixed.
            # Under DDP saving is a collective the other ranks are not in: their last.pth stands.
            if not self.dist.enabled:
                self.save("last.pth")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.metrics.close()

    def _install_stop_handlers(self) -> dict[int, Any]:
        """SIGUSR1/SIGTERM only set a flag; the loop stops at the next step boundary (all ranks
        together) and saves. Signal handlers can only be set from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        return {sig: signal.signal(sig, lambda signum, frame: self.request_stop(signum)) for sig in STOP_SIGNALS}

    def request_stop(self, signum: int) -> None:
        """Ask the loop to stop at the next step boundary (what SIGUSR1/SIGTERM do)."""
        self._stop_signal = signum

    def _stop_if_requested(self, saved: bool = False) -> None:
        """If any rank was asked to stop: write ``last.pth`` (unless it was just written) and raise
        :class:`StopRequested` on every rank. A collective: every rank calls it at the same points."""
        flag = -1 if self._stop_signal is None else int(self._stop_signal)
        signum = D.max_over_ranks(flag, self.device)
        if signum < 0:
            return
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:  # once stopping, a second signal must not kill the process mid-save
                signal.signal(sig, signal.SIG_IGN)
        if not saved:
            self.save("last.pth")
        # every rank leaves only once last.pth is on disk: srun may kill the remaining tasks as soon
        # as the first one exits
        D.barrier()
        self.log.info("stop requested (%s): saved %s at step %d%s", signal.Signals(signum).name,
                      self.out_dir / "last.pth", self.step,
                      "; the epoch's validation runs when the run continues" if self._end_of_epoch_pending() else "")
        raise StopRequested(signum, self.step, self.out_dir / "last.pth")

    def _end_of_epoch_pending(self) -> bool:
        """At an epoch boundary whose duties have not run (the run stopped right after its last step)."""
        return self.step > 0 and self.step % self.steps_per_epoch == 0 and \
            self.epochs_done < self.step // self.steps_per_epoch

    def _log_train(self, logs: dict[str, float], epoch: int, max_steps: int) -> None:
        """Every ``train.log_every`` steps (and at the last): one metrics.jsonl line, averaged over ranks."""
        if self.step % self.cfg.train.log_every and self.step != max_steps:
            return
        now = time.perf_counter()
        rate = (self.step - self._ticked) / max(now - self._tick, 1e-9)
        self._tick, self._ticked = now, self.step
        rec = {"type": "train", "step": self.step, "epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
               "it_per_s": rate}
        rec.update({k: D.all_reduce_mean(v, self.device) for k, v in logs.items()})
        self.metrics.log(rec)

    # ------------------------------------------------------------------ the loop and its duties
    def after_step(self, logs: dict[str, float], epoch: int, max_steps: int) -> None:
        """The duties after every step, in the order the class docstring explains: log, stop."""
        self._log_train(logs, epoch, max_steps)
        self._stop_if_requested()

    def after_epoch(self) -> dict[str, Any] | None:
        """The duties of an epoch boundary, in the order the class docstring explains: validation
        (when due), ``best.pth`` if it improved, ``last.pth``, then a stop request that arrived
        meanwhile. Returns the validation metrics (None when none was due)."""
        val = self._validate_if_due()
        improved = val is not None and val["miou"] is not None and val["miou"] > self.best_miou
        if improved:
            self.best_miou = val["miou"]
        self.epochs_done = self.step // self.steps_per_epoch
        state = self._checkpoint_state()
        if improved:
            self.save("best.pth", state)
        self.save("last.pth", state)
        self._stop_if_requested(saved=True)
        return val

    def _validate_if_due(self) -> dict[str, Any] | None:
        t = self.cfg.train
        ep = self.step // self.steps_per_epoch
        if self.val_set is not None and (ep % t.eval_every == 0 or ep == t.epochs):
            return self.validate(epoch=ep)
        return None

    def _fit(self, max_steps: int) -> dict[str, Any]:
        """The loop: steps, :meth:`after_step` after each, :meth:`after_epoch` after an epoch's
        last one; a ``train.max_steps`` stop within an epoch saves ``last.pth``."""
        t = self.cfg.train
        self.log.info("training %s: %d scenes, %d steps/epoch x %d epochs, batch %d (x%d processes), device %s",
                      f"{self.cfg.model.name}/{self.cfg.model.preset or 'default'}", len(self.train_set), self.steps_per_epoch, t.epochs,
                      self.batch_per_rank, self.dist.world_size, self.device)
        last_val: dict[str, Any] = {}
        self._stop_if_requested()  # a stop that came during set-up: leave before any work
        if self._end_of_epoch_pending():  # the stopped run's last step ended an epoch
            last_val = self.after_epoch() or last_val
        while self.step < max_steps:
            epoch, skip = divmod(self.step, self.steps_per_epoch)
            self.train_loader.set_epoch(epoch)
            self.sampler.set_epoch(epoch, start=skip * self.batch_per_rank)
            bar = tqdm(total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{t.epochs}",
                       disable=not (self.dist.is_main and t.progress), dynamic_ncols=True, leave=False)
            self._tick, self._ticked = time.perf_counter(), self.step
            for batch in self.train_loader:
                logs = self.train_step(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
                self.after_step(logs, epoch, max_steps)
                if self.step >= max_steps:
                    break
            bar.close()
            if self.step % self.steps_per_epoch == 0:
                last_val = self.after_epoch() or last_val
            else:  # train.max_steps within an epoch
                self.save("last.pth")
        return last_val

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, epoch: int | None = None) -> dict[str, Any]:
        """Benchmark-protocol metrics over every vertex of the validation scenes."""
        assert self.val_loader is not None
        self.model.eval()
        conf = ConfusionMatrix(self.table.num_classes)
        for batch in tqdm(self.val_loader, desc="val", disable=not (self.dist.is_main and self.cfg.train.progress), leave=False):
            batch = self._to_device(batch)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                out = self.model(batch["grid_coord"], batch["batch"], batch["feat"], batch.get("coord"))
            pred = out["logits"].argmax(1)
            conf.update(pred[batch["inverse"]], batch["origin_segment"])
        conf.all_reduce()
        metrics = summarize(conf.matrix, self.table)
        freq = None
        if self.manifest is not None:
            freq = np.array(self.manifest["class_histogram"][self.cfg.data.label_set]["counts"])
        rec = {"type": "val", "step": self.step, "epoch": epoch}
        rec.update({k: v for k, v in metrics.items() if k != "per_class"})
        self.metrics.log(rec)
        self.log.info("validation (epoch %s, step %d)\n%s", epoch, self.step,
                      format_table(metrics, self.table, freq, top=20))
        return metrics
