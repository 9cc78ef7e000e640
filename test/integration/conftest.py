"""Shared fixtures for warren's integration tests (real warrend, real clients).

  warren   module-scoped: one warrend per test module on free loopback ports with a
           fresh --data dir; at teardown SIGTERM by pid and assert exit status 0
  base     that server's base URL, e.g. http://127.0.0.1:40123
  api      function-scoped lib.warren.Api on a fresh random project (tenant), so
           tests sharing a server never see each other's queues

Run from the repo root:  /usr/bin/python3 -m pytest test/integration/rest
Against the sanitizer build:  WARREN_BIN=build-asan/warrend /usr/bin/python3 -m pytest ...
Against OpenStack Zaqar (to check the tests):  WARREN_TARGET=zaqar ... (lib/zaqar_ref.py)
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import warren as wl  # noqa: E402


def make_server():
    if os.environ.get("WARREN_TARGET") == "zaqar":
        import zaqar_ref
        return zaqar_ref.ZaqarRef()
    return wl.Warren()


@pytest.fixture(scope="module")
def warren():
    w = wl.start_or_fail(make_server())
    yield w
    wl.stop_and_check(w)


@pytest.fixture(scope="module")
def base(warren):
    return warren.url


@pytest.fixture
def api(base):
    a = wl.Api(base)
    yield a
    a.session.close()
