"""Differential testing of converters: generate models, convert them, find and locate wrong conversions."""
