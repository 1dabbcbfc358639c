"""pipelines.deferred: a registered module's code runs on its first use, not on its import, and then whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PACKAGE = {
    "probe/__init__.py": "import json, os\nRUNS = 1\nopen(os.environ['PROBE_LOG'], 'a').write('package\\n')\n",
    "probe/sub.py": "import os\nopen(os.environ['PROBE_LOG'], 'a').write('sub\\n')\nVALUE = 42\n",
}

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pipelines.deferred import defer
    log = lambda: open(os.environ["PROBE_LOG"]).read().split() if os.path.exists(os.environ["PROBE_LOG"]) else []
    seen = {}
    defer(("probe", "json"))  # json is imported already: left as it is
    import importlib
    importlib.invalidate_caches()  # asks every finder on sys.meta_path, ours included
    seen["registered"] = ["probe" in sys.modules, log()]
    import probe.sub  # the submodule runs, its package does not
    seen["imported"] = [type(sys.modules["probe"]).__name__, log(), probe.sub.VALUE]
    seen["used"] = [probe.RUNS, type(sys.modules["probe"]).__name__, log(), probe.sub is sys.modules["probe.sub"]]
    seen["loader"] = type(probe.__loader__).__name__
    seen["json"] = type(sys.modules["json"]).__name__
    try:
        defer(("no_such_module_anywhere",))
        import no_such_module_anywhere
    except ModuleNotFoundError as exc:
        seen["missing"] = str(exc)
    print(json.dumps(seen))
    """
)


@pytest.fixture
def probe_path(tmp_path):
    for name, text in PACKAGE.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_deferred_package_runs_once_on_first_use_and_its_submodules_run_as_usual(probe_path, monkeypatch):
    monkeypatch.setenv("PROBE_LOG", str(probe_path / "log"))
    monkeypatch.setenv("PYTHONPATH", f"{probe_path}:{':'.join(sys.path)}")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["registered"] == [False, []]  # registering imports nothing
    assert seen["imported"] == ["_Deferred", ["sub"], 42]
    assert seen["used"] == [1, "module", ["sub", "package"], True]  # ran once, in place, on the first attribute read
    assert seen["loader"] == "SourceFileLoader"  # the real loader, as an ordinary import leaves it
    assert seen["json"] == "module"
    assert seen["missing"] == "No module named 'no_such_module_anywhere'"


THREADS = textwrap.dedent(
    """
    import os, sys, threading
    from pipelines.deferred import defer
    defer(("slowprobe",))
    import slowprobe
    seen = []
    readers = [threading.Thread(target=lambda: seen.append(slowprobe.VALUE)) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(10)
    print(seen, open(os.environ["PROBE_LOG"]).read().split())
    """
)


def test_threads_reading_a_deferred_module_at_once_run_it_once(tmp_path, monkeypatch):
    (tmp_path / "slowprobe.py").write_text(
        "import os, time\nopen(os.environ['PROBE_LOG'], 'a').write('ran\\n')\ntime.sleep(0.3)\nVALUE = 7\n"
    )
    monkeypatch.setenv("PROBE_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{':'.join(sys.path)}")
    out = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[7, 7, 7, 7] ['ran']"


AFTER = textwrap.dedent(
    """
    import json, os, sys
    from pipelines.deferred import after_import
    log = lambda: open(os.environ["PROBE_LOG"]).read().split()
    seen = {}
    after_import(("probe", "json"), lambda: seen.setdefault("calls", []).append(log()))  # json: imported already
    import probe  # the call comes right after the module's code
    seen["after"] = [type(sys.modules["probe"]).__name__, probe.RUNS, type(probe.__loader__).__name__]
    del sys.modules["probe"]
    import probe  # a later import of the name is an ordinary one
    print(json.dumps(seen))
    """
)


def test_after_import_calls_once_right_after_the_first_import(probe_path, monkeypatch):
    monkeypatch.setenv("PROBE_LOG", str(probe_path / "log"))
    monkeypatch.setenv("PYTHONPATH", f"{probe_path}:{':'.join(sys.path)}")
    out = subprocess.run([sys.executable, "-c", AFTER], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["calls"] == [["package"]]  # once, after probe/__init__ ran; never for json
    assert seen["after"] == ["module", 1, "SourceFileLoader"]
