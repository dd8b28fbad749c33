"""A quiet TensorFlow start-up for the command-line tools (``python -m loop.bench``, ``python -m loop.datasets``).

TensorFlow writes C++ log lines to the process's stderr when it is imported and
when it first looks for devices: absl's "All log messages before
absl::InitializeLog() ..." warning, oneDNN and CUDA-driver notes, the CPU
instruction notice, and on a machine without a GPU an ``E0000 ... failed call to
cuInit`` line that reads like an error.  ``TF_CPP_MIN_LOG_LEVEL`` hides some of
them only when set before the import, and some are written before TensorFlow
reads it (tensorflow/tensorflow#100442).  :func:`import_tensorflow` therefore
sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it), imports TensorFlow and
lists its devices with file descriptor 2 sent to a temporary file, then writes
back every captured line that is not one of those start-up notes, so a real
error or warning still shows.  A user who sets ``TF_CPP_MIN_LOG_LEVEL``
themselves sees TensorFlow's output unfiltered.

The library itself (``import loop``) changes no environment variable and
filters nothing; only the command lines call this.
"""

import contextlib
import os
import re
import sys
import tempfile

#: The environment variable TensorFlow's C++ logging reads once, at import.
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"

#: Start-up lines that are notes, not problems: absl's pre-initialisation warning, INFO/WARNING lines in absl's
#: format (``I0000 00:00:...``, ``W0000 ...``), the CPU-instruction notice's second line, and the cuInit error a
#: machine without a GPU driver prints.
STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    r"|E\d{4} \d\d:\d\d:\S+\s+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit")


@contextlib.contextmanager
def _filtered_stderr():
    """Sends file descriptor 2 to a temporary file; afterwards writes back the lines that are not start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not STARTUP_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """Imports TensorFlow and Keras and initialises TensorFlow's devices without the start-up log lines.

    Call it before anything else imports TensorFlow; once TensorFlow is imported
    it only returns the module.  Lines that are not start-up notes (a Python
    warning, a real error) are written to stderr as they came.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if LOG_LEVEL in os.environ:  # the user chose a level: show what it lets through, unfiltered
        import keras  # noqa: F401
        import tensorflow as tf

        return tf
    os.environ[LOG_LEVEL] = "2"
    with _filtered_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the first device look-up: the cuInit line comes here, on a CPU machine
    return tf
