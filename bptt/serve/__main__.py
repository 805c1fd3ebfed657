"""`python -m bptt.serve`: the same as `bptt-serve`."""
from bptt.serve.main import main

main()
