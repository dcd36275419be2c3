"""Running a case: the pipeline of named stages (pipeline.py), the transport stage (transport.py,
recorder.py), summary.json (summary.py), variants (variants.py), stops, interrupts and progress."""
