"""After a run: report, optics, figures."""
