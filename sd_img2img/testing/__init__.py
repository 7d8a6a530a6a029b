"""Tiny random-weight checkpoints in the real diffusers layouts, for the offline demo (``--model random``) and the
tests. Imported only when a ``random*`` model is asked for, or by the tests."""
