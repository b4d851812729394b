"""Experiments over many runs: synthetic data for them, several training processes at once, one
run's train-evaluate-analyse worker, paired statistics and the study report. Used by
``python -m pcseg.demo`` and ``bench/imbalance_study.py``; sits above the engine."""
