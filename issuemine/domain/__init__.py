"""The vocabulary every stage speaks: taxonomy, converters, stages, tracebacks, tolerances, addresses."""
