"""`python -m bench.speed`: the harness against the usual notebook loop and a bare loop."""
import sys

from bench.speed.benchmark import main

sys.exit(main())
