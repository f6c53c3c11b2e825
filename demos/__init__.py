"""edgepack's demos. A package so that a demo's stages run as modules from the repository root
(`python -m demos.kws.training.train_head ...`) and import each other by their full names."""
