"""The test suite: a package, so that its modules share tests/helpers.py by name."""
