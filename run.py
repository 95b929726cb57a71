"""The one entry point: parse config, build, train, evaluate, log.

    python run.py --model ae --dataset fashion_mnist
    python run.py --list
"""
import sys

if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):  # answered without importing torch
        from bench.config import build_parser
        build_parser().print_help()
        sys.exit(0)
    from bench.runner import main
    sys.exit(main())
