"""The results directory: writer and reader."""
