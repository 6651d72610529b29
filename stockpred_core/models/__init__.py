"""Forecasters behind one interface (PyTorch ones optional), training, tuning and the promotion rule."""
