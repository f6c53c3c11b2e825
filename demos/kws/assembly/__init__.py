"""Stage `assembly`: from trained parts to what `edge build` takes.

- tune_detector.py: step 2 (`tune-detector`), the detector's defaults chosen on the validation speakers' stream
- assemble.py: step 3 (`assemble`), embedding + head + state in one streaming ONNX graph, with its labels file
  and calibration / evaluation data
- export.py: DS-CNN step 3
"""
