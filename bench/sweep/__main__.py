"""`python -m bench.sweep SWEEP.yaml`: run a W&B sweep YAML locally or on Slurm."""
import sys

from bench.sweep.command import main

sys.exit(main())
