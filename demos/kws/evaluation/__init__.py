"""Stage `evaluation`: how well the models hear speakers and voices that no training or choice used.

- real_stream.py: step 5 (`measure`), the real test speakers' stream, which benchmarks/voice.py runs the
  executables on
- listening.py: the app's Listener replayed in-process and the scoring of detections; the one module of
  demos/ that benchmarks/ imports (and nothing of benchmarks/ is imported here)
- enrolment.py: commands enrolled from k recordings (edge/runtime/audio/enrol.py) heard by the test speakers,
  and what else triggers them, clip by clip (benchmarks/results/enrol.json)
- enrolled_stream.py: the same through the real executable (`--enroll`, then `--wav` on the test speakers'
  stream), with the built-in commands, memory and enrolment time (benchmarks/results/enrol_stream.json)
- evaluate.py: DS-CNN step 4; stream_check.py: DS-CNN step 5
"""
