"""Studies: benchmarks of training runs under memory strategies (above `tasks`)."""
