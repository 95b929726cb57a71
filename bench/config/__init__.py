"""A run's configuration: how a key is declared (`keys`), the run keys and the catalogue of
every key (`run_keys`), the task kinds (`tasks`), the one resolution of a run into a frozen
`RunSpec` (`spec`) and the command line of `run.py` (`cli`). The registry (`registry.py`) is
the name lookup these read; nothing here imports data, models or training.

Four modules and not one, because their readers differ: `keys` imports nothing (analysis reads
older records with its `RENAMED` table, without torch), `run_keys` checks values with no
model family imported (a sweep YAML's validation), `cli` refuses a bad flag before torch
loads, and only `spec` asks the registry, which imports every family.

One name, one meaning, across the package: `spec` is a run's RunSpec; `cfg` is a model
family's Config (what a family file receives); `spec.dataset_keys` is the dataset's own
Config; `sweep_config` is a sweep YAML as read, `param` one of its parameters ({values: [...]});
`declared` is a key's declaration (its field and type); `record` is a run's flat config.json;
`data` is the DataBundle of loaded splits."""
