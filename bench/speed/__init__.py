"""How fast the harness is against a bare loop (`benchmark`, behind `python -m bench.speed`):
what a tiny run costs beyond its work (`startup`), a marginal epoch (`epoch`), and the bare
yardsticks they are measured against (`bare/`)."""
