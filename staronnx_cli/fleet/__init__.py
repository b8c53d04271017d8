"""A campaign of sweeps on the machine kinds of a Ray cluster (staronnx fleet)."""
