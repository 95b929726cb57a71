"""Numbers and pictures of a model's output that know nothing of training: batched test-set
metrics (`metrics`), matplotlib figures (`figures`) and the labelled image rows every run
draws with Pillow (`grids`)."""
