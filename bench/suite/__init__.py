"""The standard benchmark (`standard`, behind `python -m bench.suite`): every registered
autoencoder family, the same budget, three seeds, one sweep per dataset."""
