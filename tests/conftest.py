import os
import pathlib
import sys

import jax
from hypothesis import settings

# Eight simulated CPU devices, for the sharded and multi-device tests
# (test_sharding); a single-device computation runs on the first, as without
# them. This must happen before jax starts its backend, which importing the
# test modules would.
jax.config.update("jax_num_cpu_devices", 8)

sys.path.insert(0, str(pathlib.Path(__file__).parent))

# CI replays the same examples on every run (a failure there is reproducible);
# runs elsewhere keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
