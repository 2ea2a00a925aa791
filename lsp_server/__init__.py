"""Code Context: semantic code search as a language server."""
