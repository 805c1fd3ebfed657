"""Training: the train loop, optimisers, safetensors io and memory measurement (above `bptt.nn`)."""
