"""pcseg: class-imbalanced 3D semantic segmentation with the neural-collapse center regularizer."""

__version__ = "0.1.0"
