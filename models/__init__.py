"""What training, evaluation and serving share: the exported artifact, the ONNX predictor and the registry,
the label schema, the metrics (:mod:`models.metrics`) and the temperature-scaling maths (:mod:`models.calibration`).

Nothing here imports torch or transformers.
"""
