"""Data: sources (registry), the labeled/unlabeled split, and batch streams."""
