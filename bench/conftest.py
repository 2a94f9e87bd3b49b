# The benchmarks are a command (`python -m bench`), not tests: keep pytest out even if it is
# pointed at this directory.
collect_ignore_glob = ["*.py"]
