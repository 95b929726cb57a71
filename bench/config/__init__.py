"""A run's configuration: how a key is declared (`keys`), the run keys and the catalogue of
every key (`run_keys`), the task kinds (`tasks`), the one resolution of a run into a frozen
`RunSpec` (`spec`) and the command line of `run.py` (`cli`). The registry (`registry.py`) is
the name lookup these read; nothing here imports data, models or training."""
