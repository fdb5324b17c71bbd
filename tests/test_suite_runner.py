"""Issue #19: what README promises of the test runner itself (tests/forked.py, tests/distributed.py, conftest)."""
import os
import sys
import time

import psutil
import pytest
from hypothesis import settings

import forked
from distributed import mark, run


def stuck_on_rank_1(rank, world):
    mark("first")
    mark("waits for a peer that never comes")
    if rank == 1:
        time.sleep(120)
    return os.getpid()


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_a_hung_rank_fails_its_own_test_naming_the_scenario_and_is_killed(tmp_path):
    forked.context()  # the session's forkserver (and its resource tracker) stay; the ranks forked from it must not
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(AssertionError) as err:
        run(2, stuck_on_rank_1, tmp_path=tmp_path, timeout=5)
    message = str(err.value)
    assert "test_suite_runner.stuck_on_rank_1: ranks [1] still running after 5s (hang)" in message
    assert "rank 1: waits for a peer that never comes" in message
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"processes left behind: {left}"


def test_forked_run_is_subprocess_run_for_python(tmp_path):
    code = ("import atexit, os, sys; atexit.register(lambda: print('atexit ran')); "
            "print(os.getcwd(), os.environ['ONLY_HERE'], sys.argv[1:]); print('to stderr', file=sys.stderr); sys.exit(3)")
    out = forked.run([sys.executable, "-c", code, "a", "b"], cwd=tmp_path, env={"ONLY_HERE": "yes"}, timeout=60)
    assert out.returncode == 3
    assert out.stdout == f"{tmp_path} yes ['a', 'b']\natexit ran\n" and out.stderr == "to stderr\n"
    script = tmp_path / "script.py"
    script.write_text("import sys\nraise ValueError('boom')\n")
    failed = forked.run([sys.executable, str(script)], timeout=60)
    assert failed.returncode == 1 and "ValueError: boom" in failed.stderr and failed.stdout == ""


def test_property_tests_draw_the_same_examples_on_every_run():
    assert settings.default.derandomize
