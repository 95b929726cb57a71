"""What a run leaves behind and how it is read back: the local run store (`store`: one folder per
run, its files and statuses), checkpoints (`checkpoint`), tracking to the store and W&B behind
one interface (`track`), W&B model artifacts (`artifacts`), the health flags read from a
summary (`health`: what a run's numbers cannot be trusted for) and a finished run's model
rebuilt from its record (`rebuild`)."""
