"""The one entry point: parse config, build, train, evaluate, log.

    python run.py --model ae --dataset fashion_mnist
    python run.py --list
"""
import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
