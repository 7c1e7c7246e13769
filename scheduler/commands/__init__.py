"""One module per CLI command; each exposes ``run(args, out) -> exit code`` and holds no parsing."""
