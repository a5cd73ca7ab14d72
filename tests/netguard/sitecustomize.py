"Python imports this at start-up when this folder is on PYTHONPATH (the test suite sets it): guard the process."
import netguard  # noqa: F401
