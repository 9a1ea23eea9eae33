"""People: placing each new face, reading people, re-clustering (in a process of its own) and users' corrections."""
