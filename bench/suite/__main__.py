"""`python -m bench.suite`: the standard benchmark."""
import sys

from bench.suite.standard import main

sys.exit(main())
