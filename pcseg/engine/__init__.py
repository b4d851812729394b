"""Engine: configuration, trainer, checkpoints, logging, distributed helpers."""
