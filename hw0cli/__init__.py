"""hw0: fast, reproducible, inspectable experiments for the deep-learning homework."""

from hw0cli.paths import point_compile_caches

__version__ = "0.1.0"

# before torch._dynamo is imported (torchvision imports it): it fixes its cache folder then
point_compile_caches()
