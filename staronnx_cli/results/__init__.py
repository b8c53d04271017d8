"""The files a sweep writes and every reader of them: run.json, points.csv, batches.csv (schema.py), the task
columns of batches.csv (tasks.py), run.json as typed fields (runmeta.py), and a run read back, checked (read.py).
A low floor: nothing here imports the runtime, so `sweep/` writes through it and `plots/` reads through it without
knowing each other. Every column is described in docs/formats.md."""
