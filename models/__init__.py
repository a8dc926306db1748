"""What training, evaluation and serving share: the exported artifact, the ONNX predictor and the registry.

Nothing here imports torch or transformers.
"""
