"""Converted-model quality: accuracy, latency, memory, size and robustness before and after conversion."""
