"""After a run: report, optics, figures."""

from threadpoolctl import threadpool_limits

#: Drawing and the report run with one BLAS thread: a threaded BLAS on busy cores (the other MPI
#: ranks, other jobs) stalls, and scipy's Delaunay interpolation took 10-30 s a call instead of
#: 10 ms on 2 cores; the arrays drawn are small.
one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")
