"""Models shipped with the package: one self-describing folder per model (config.json, weights, ONNX, card)."""
