"""The command lines start quietly: importing the packages loads no TensorFlow, and its start-up lines are filtered."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's fresh shell has it
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          **kwargs)


def test_importing_the_packages_loads_no_tensorflow_until_a_name_needs_it():
    code = ("import sys\nimport loop, loop.bench, loop.datasets\nprint(sorted(m for m in ('tensorflow', 'keras') "
            "if m in sys.modules))\nfrom loop import Loop\nprint('tensorflow' in sys.modules, Loop.__module__)")
    done = run_python(["-c", code])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", "True loop.loop"]


def test_loading_a_dataset_from_the_command_line_prints_no_tensorflow_start_up_lines():
    done = run_python(["-m", "loop.datasets", "iris"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("iris: x_train (120, 4)")
    assert done.stderr == "", done.stderr


def test_a_user_who_sets_the_log_level_sees_tensorflow_unfiltered():
    code = "from loop import startup\nstartup.import_tensorflow()\nimport os\nprint(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0"  # setdefault: the user's choice stands
    assert "absl::InitializeLog" in done.stderr  # and TensorFlow's own start-up lines reach the terminal
