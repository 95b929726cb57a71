"""aebench: a benchmark harness for autoencoder research (library package)."""
