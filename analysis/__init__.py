"""Analysis: recorded runs -> tables, figures and reports (never retrains)."""
