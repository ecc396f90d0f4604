"""The corpus: fetching converters' issues from GitHub, storing them, filtering, sampling, sharing."""
