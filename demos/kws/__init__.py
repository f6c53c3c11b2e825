"""The voice-command demo (README.md): real speech → a head on a pretrained speech embedding → one streaming
model. One folder per stage of README.md's pipeline, each module run from the repository root as
`python -m demos.kws.FOLDER.MODULE`; pipeline.py runs the stages in order.

  data/        step 1a (`negatives`): keyword-free synthetic streams; the real-speech loader and the
               augmentation that later stages read
  training/    step 1 (`train-head`): the head on the speech embedding
  assembly/    step 2 (`tune-detector`) and step 3 (`assemble`): the detector's defaults, the streaming graph
  evaluation/  step 5 (`measure`): real speakers' streams; listening.py, the one module benchmarks/ imports

The synthetic-voice DS-CNN's steps live in the same folders (README.md, "The synthetic-voice DS-CNN").
common.py: the constants and audio helpers of every stage."""
