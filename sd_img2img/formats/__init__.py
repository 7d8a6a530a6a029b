"""The files other tools read and write: PNG metadata (ours and AUTOMATIC1111's text), settings from other tools'
PNGs, and sampler names across tools."""
