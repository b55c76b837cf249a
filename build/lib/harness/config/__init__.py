"""The configuration: the schema (structured configs), the checks of bad input, the experiment presets
and where the YAML files are. Used by the Hydra side; never imports TensorFlow."""
