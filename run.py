"""The one entry point: parse config, build, train, evaluate, log.

    python run.py --model ae --dataset fashion_mnist
    python run.py --list
"""
import sys

if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):  # run keys only: answered without importing torch
        from bench.config.cli import print_help
        from bench.core.errors import UsageError, exit_usage
        try:
            print_help(sys.argv[1:])
        except UsageError as e:
            exit_usage("run.py", e)
        sys.exit(0)
    from bench.config.cli import refuse_unknown_flags
    from bench.core.errors import UsageError, exit_usage
    try:  # a flag no key has: refused before torch is imported, where this tree's flags are known
        refuse_unknown_flags(sys.argv[1:])
    except UsageError as e:
        exit_usage("run.py", e)
    from bench.run.runner import main
    sys.exit(main())
