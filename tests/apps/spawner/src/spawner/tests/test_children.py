"""pytest tests that start children of ``sys.executable``."""

import multiprocessing
import subprocess
import sys

import pytest

import spawner


def test_a_child_runs_the_standard_library():
    assert spawner.child("import json; print(json.dumps([1, 2]))") == "[1, 2]\n"


def test_a_child_has_the_same_prefix_and_imports_the_app_from_it():
    facts = spawner.child_facts()
    assert facts["prefix"] == sys.prefix
    assert facts["spawner"] == spawner.__file__


def test_the_app_runs_as_a_module_in_a_child():
    done = subprocess.run([sys.executable, "-m", "spawner"], stdout=subprocess.PIPE,
                          text=True, check=True)
    assert done.stdout == "hello from a child\n"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_children_compute(n):
    assert spawner.child("import sys; print(2 * int(sys.argv[1]))", str(n)) == f"{2 * n}\n"


def test_multiprocessing_spawn_starts_children():
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(spawner.double, [1, 2, 3]) == [2, 4, 6]


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="counted as skipped on Linux")
def test_skipped_on_linux():
    pass
