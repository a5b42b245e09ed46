"""Benchmark datasets, metrics and harnesses (LoCoMo; LongMemEval to come)."""
