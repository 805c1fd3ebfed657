"""`python -m bptt.cli`: the same as `bptt-bench`."""
import sys

from bptt.cli.main import main

sys.exit(main())
