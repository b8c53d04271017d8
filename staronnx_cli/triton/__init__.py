"""A real Triton Inference Server as a baseline: its model repository, its process, a client for our load."""
