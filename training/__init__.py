"""Training stage: fine-tune the two-head intent classifier, calibrate it, export it to ONNX.

``config`` (TrainConfig) → ``features`` (tokens, token-level signal targets from spans, batches) →
``model`` (IntentModel, joint loss) → ``train`` (Hugging Face Trainer → run directory) →
``calibrate`` (temperature, thresholds) → ``export`` (verified fp32 + int8 ONNX artifact).
``metrics`` scores predictions for all of them; ``cli`` / ``export_cli`` are the commands.
"""
