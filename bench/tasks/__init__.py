"""Task kinds, one module each, found like models and tools (`bench.config.tasks.register_task`):
a new kind of task is one new file here, listed in `--help`, checked by the generated model
tests, evaluated after training, and known to the standard benchmark."""
