"""Stage `data`: what the models learn from and are judged on.

- streams.py: step 1a (`negatives`), keyword-free streams by train voices (the head's negatives) and a tuning
  stream by held-out voices; by default the held-out test streams (DS-CNN step 5, benchmarks/voice.py)
- speech_commands.py: real speech, read by steps 1, 2 and 5 (Speech Commands' layouts, the split by speaker)
- augment.py: waveform augmentation and generated `_silence_` for training and noisy evaluation copies
- synthetic_clips.py (DS-CNN step 1) with neural_voices.py: keyword clips from speech synthesizers
"""
