"""The Hydra side of a sweep: check and order the cells, launch one clean run process per cell, report
progress, decide Comet's mode once per sweep. Never imports TensorFlow."""
