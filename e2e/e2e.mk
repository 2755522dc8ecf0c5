# Control-plane and end-to-end targets; included by the top-level Makefile.
