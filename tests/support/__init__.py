"""Helpers shared by the test modules: processes and stacks to start, data to feed them,
and answers to compare. Test modules import from here, never from each other."""
