"""The torch side of audioemb: frontend, encoders, the exported model, heads. Needs the [train] extra."""
