"""``python -m loop.datasets [NAME ...]``: list the datasets, or load some.

With no names, prints `available()` (without importing TensorFlow). With names,
loads each and prints its shapes, source and load time; TensorFlow is imported
first through :func:`loop.startup.import_tensorflow`, which keeps its start-up
log lines out of the terminal.
"""

import argparse
import time

import pandas as pd

from loop import datasets


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m loop.datasets")
    parser.add_argument("names", nargs="*", help="datasets to load")
    parser.add_argument("--data-dir", default=None,
                        help="directory of original files (default $LOOP_DATA_DIR)")
    args = parser.parse_args(argv)
    if not args.names:
        with pd.option_context("display.width", 250, "display.max_columns", None,
                               "display.max_colwidth", 66):
            print(datasets.available(data_dir=args.data_dir))
        return 0
    from loop import startup

    startup.import_tensorflow()  # the loaders may read through keras; its start-up lines stay quiet
    for name in args.names:
        start = time.perf_counter()
        ds = datasets.load(name, data_dir=args.data_dir)
        seconds = time.perf_counter() - start
        print(f"{ds.name}: x_train {ds.x_train.shape} {ds.x_train.dtype}, "
              f"y_train {ds.y_train.shape} {ds.y_train.dtype}, x_test "
              f"{ds.x_test.shape}, y_test {ds.y_test.shape}, "
              f"{ds.num_classes} classes, {seconds:.2f}s\n  {ds.source}\n  {ds.info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
