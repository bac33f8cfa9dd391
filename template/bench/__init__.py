"""`make bench`: load-test the application as it runs in production (see `python -m bench -h`)."""
