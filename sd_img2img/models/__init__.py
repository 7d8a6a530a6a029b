"""The models: what a checkpoint is (its family), how it loads (hub id, folder, single file, LoRAs), where it runs
(device, dtype, memory), and the set a server offers. Nothing here loads a model at import time."""
