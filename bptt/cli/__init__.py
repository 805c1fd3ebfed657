"""The command line: `bptt-bench` (`main`) and the work behind each of its commands."""
from bptt.cli.main import main

__all__ = ["main"]
