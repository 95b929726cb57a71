"""One run end to end: what is checked before its folder exists (`prepare`), the training loop
(`train`), test-set evaluation and the tools run on a run (`evaluate`), the early-stopping rule
of a sweep (`stopping`), and the runner that ties them together (`runner`, behind `run.py`)."""
