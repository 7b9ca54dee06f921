"""The example applications in examples/ and the README's embedding programs, run for real."""
