"""A W&B sweep YAML run locally or on Slurm: the file read and checked (`file`), what runs next
(`plan`), the best configuration of a finished sweep (`best`), the runner's console relay
(`relay`), runs started by forking (`forked`), a Slurm job array (`slurm`), and the agent that
runs it all (`agent`, behind `python -m bench.sweep`)."""
