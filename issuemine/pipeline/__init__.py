"""The whole pipeline at once: the end-to-end demo and the study report gathering every stage."""
