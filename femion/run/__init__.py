"""Running a case: the pipeline of stages, interrupts and progress."""
