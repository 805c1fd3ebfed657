"""Benchmark tasks: for each, the data, the model it trains, the loss and the metric."""
