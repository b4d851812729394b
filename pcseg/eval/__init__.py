"""Evaluation: benchmark-protocol metrics, test-time augmentation, submissions."""
