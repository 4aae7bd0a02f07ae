"""The commands: one module per console script, each a thin ``main(argv)`` over library functions."""
