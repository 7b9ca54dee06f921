"""README generators: where each metric family is built, and the module map."""
