"""`python -m bench.sweep SWEEP.yaml`: run a W&B sweep YAML locally or on Slurm."""
import sys

from bench.sweep.agent import main

sys.exit(main())
