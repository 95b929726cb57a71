"""The yardsticks of the speed benchmark: plain scripts that do a run's work with nothing of
the harness (`script`: a tiny run; `loop`: epochs that validate), run as files."""
