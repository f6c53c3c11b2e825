"""Stage `assembly`: from trained parts to what `edge build` takes.

- tune_detector.py: step 2 (`tune-detector`), the detector's defaults chosen on the validation speakers' stream
- bank.py: step 2a (`bank`), what enrolled commands are measured against: the training speakers' built-in
  commands and noise as the model's state holds them
- assemble.py: step 3 (`assemble`), embedding + head + state in one streaming ONNX graph, with its labels file
  and calibration / evaluation data
- export.py: DS-CNN step 3
"""
