"""Training: the loop (loop.py), the run it builds (run.py), one step (step.py), checkpoint files,
run folders, and devices and processes (distributed.py)."""
