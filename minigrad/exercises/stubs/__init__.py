"""The files `python -m minigrad.exercises start NAME` copies out for the learner to fill in, one per
exercise: each op's forward, given, and its backward left to write, term by term (see ../__init__.py)."""
