"""`python -m minigrad.exercises ...`: see cli.py."""
from minigrad.exercises.cli import main

raise SystemExit(main())
