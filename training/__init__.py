"""Training stage: fine-tune the two-head intent classifier, calibrate it, export it to ONNX."""
