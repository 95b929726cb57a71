"""A W&B sweep YAML run locally or on Slurm: the file read and checked (`file`), what runs next
(`plan`), what the sweep folder holds and which configurations are done (`ledger`), the best
configuration of a finished sweep (`best`), the runner's console relay (`relay`), runs started by
forking (`forked`), a Slurm job array (`slurm`), the runner itself (`agent`), and its command
line (`command`, behind `python -m bench.sweep`)."""
