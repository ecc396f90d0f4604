"""Analysis of final labels: the study's tables and figures as pandas DataFrames."""
