"""Model families; importing this package registers every model."""
from bench.models import classifiers, conv_ae, seg, small, vae  # noqa: F401
