"""The one writer (wsolbench.io): every rule it owns, and the source walk that fails on any
write that bypasses it (docs/bad-input.md, "Writing")."""

from __future__ import annotations

import ast
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsolbench import io
from wsolbench.errors import WsolbenchError

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "wsolbench", ROOT / "methods", ROOT / "evaluation"]
WRITER = ROOT / "wsolbench" / "io.py"

# ----------------------------------------------------------------------------- the source walk

# Calls that write to the file system, by attribute name (any receiver) or module function.
WRITING_METHODS = {
    "write_text",
    "write_bytes",
    "mkdir",
    "touch",
    "unlink",
    "rmdir",
    "symlink_to",
    "hardlink_to",
    "chmod",
    "savefig",
    "to_csv",
    "to_json",
    "to_parquet",
    "to_pickle",
    "to_excel",
    "tofile",
    "imwrite",
}
# `save` is too common a name to flag on any object (the package's own savers go through the
# writer): flagged on these modules, on an image just made (`Image.fromarray(a).save(...)`),
# or with an image `format=`.
SAVERS = {"save", "savez", "savez_compressed", "savetxt"}
SAVING_MODULES = {"np", "numpy", "torch", "Image", "cv2"}
WRITING_FUNCTIONS = {
    "os": {
        "remove",
        "unlink",
        "rename",
        "renames",
        "replace",
        "makedirs",
        "mkdir",
        "rmdir",
        "removedirs",
        "symlink",
        "link",
        "chmod",
        "truncate",
        "mkfifo",
    },
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree", "copyfileobj"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"},
}
# Keyword names under which these calls take their destination.
DESTINATION_KEYWORDS = ("file", "fname", "fp", "path", "path_or_buf", "filename", "f")
IN_MEMORY = {"BytesIO", "StringIO"}


def _callee(call: ast.Call) -> tuple[str | None, str | None]:
    """(module or receiver name, attribute) of ``call``; (None, name) for a bare name."""
    func = call.func
    if isinstance(func, ast.Attribute):
        receiver = func.value.id if isinstance(func.value, ast.Name) else None
        return receiver, func.attr
    if isinstance(func, ast.Name):
        return None, func.id
    return None, None


def _safe_names(function: ast.AST) -> set[str]:
    """Names bound, in this scope, to the writer's temporary path (``with atomic_path(...) as
    tmp``), to a file opened on one, or to an in-memory buffer."""
    safe: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.With):
            for item in node.items:
                call, target = item.context_expr, item.optional_vars
                if not isinstance(call, ast.Call) or not isinstance(target, ast.Name):
                    continue
                _, name = _callee(call)
                opened_safe = (
                    name == "open"
                    and call.args
                    and isinstance(call.args[0], ast.Name)
                    and call.args[0].id in safe
                )
                if name == "atomic_path" or opened_safe:
                    safe.add(target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if _callee(node.value)[1] in IN_MEMORY:
                safe.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return safe


def _destination(call: ast.Call) -> ast.AST | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg in DESTINATION_KEYWORDS:
            return keyword.value
    return None


def _is_write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else None
    for keyword in call.keywords:
        if keyword.arg == "mode":
            mode = keyword.value
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(flag in mode.value for flag in "wax+")
    return True  # a computed mode: assume it writes


def writes_bypassing_the_writer(source: str, filename: str = "<source>") -> list[str]:
    """Every call in ``source`` that writes a file other than through the writer, as
    "file:line: call"."""
    tree = ast.parse(source, filename)
    scopes = [tree] + [
        n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    found = set()
    for scope in scopes:
        safe = _safe_names(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            receiver, name = _callee(node)
            if name is None:
                continue
            writes = False
            is_attribute = isinstance(node.func, ast.Attribute)
            if not is_attribute:
                writes = name == "open" and _is_write_mode(node)
            elif receiver in WRITING_FUNCTIONS:
                writes = name in WRITING_FUNCTIONS[receiver]
            elif name in SAVERS:
                made = isinstance(node.func.value, ast.Call)
                formatted = any(k.arg == "format" for k in node.keywords)
                writes = receiver in SAVING_MODULES or made or formatted
            elif name in WRITING_METHODS:
                if receiver in safe:  # tmp.write_bytes(...) on the writer's temporary path
                    continue
                destination = _destination(node)
                if name in ("to_csv", "to_json") and destination is None:
                    continue  # returns the text instead of writing it
                writes = True
            if not writes:
                continue
            destination = _destination(node)
            if receiver == "torch" and len(node.args) > 1:
                destination = node.args[1]  # torch.save(obj, path)
            if isinstance(destination, ast.Name) and destination.id in safe:
                continue
            found.add(f"{filename}:{node.lineno}: {ast.unparse(node.func)}(...)")
    return sorted(found)


def test_no_write_bypasses_the_writer():
    """Every file the package writes goes through wsolbench.io: a new write elsewhere (a
    `Path.write_text`, `np.save`, `savefig`, `open(..., "w")`, `os.replace`, ...) fails here."""
    found = []
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            if path == WRITER:
                continue
            found += writes_bypassing_the_writer(path.read_text(), str(path.relative_to(ROOT)))
    assert found == [], "writes that bypass wsolbench.io:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from pathlib import Path\nPath('x').write_text('y')",
        "import numpy as np\nnp.save('x.npy', a)",
        "def f(fig, p):\n    fig.savefig(p)",
        "def f(p):\n    with open(p, 'wb') as h:\n        h.write(b'')",
        "import os\nos.replace('a', 'b')",
        "import shutil\nshutil.copytree('a', 'b')",
        "def f(frame, p):\n    frame.to_csv(p)",
        "import torch\ntorch.save({}, 'x.pt')",
        "def f(p):\n    p.parent.mkdir(parents=True)",
        "from PIL import Image\ndef f(a, p):\n    Image.fromarray(a).save(p)",
    ],
)
def test_the_source_walk_finds_a_bypassing_write(source):
    assert writes_bypassing_the_writer(source)


@pytest.mark.parametrize(
    "source",
    [
        "def f(p, fig):\n    with atomic_path(p) as tmp:\n        fig.savefig(tmp)",
        "def f(p, a):\n    with atomic_path(p) as tmp, open(tmp, 'wb') as h:\n        np.save(h, a)",
        "import io\ndef f(img):\n    buffer = io.BytesIO()\n    img.save(buffer, format='PNG')",
        "def f(frame):\n    return frame.to_csv(index=False)",
        "def f(p):\n    with open(p) as h:\n        return h.read()",
        "def f(p):\n    with atomic_path(p) as tmp:\n        tmp.write_bytes(b'')",
    ],
)
def test_the_source_walk_allows_writes_through_the_writer(source):
    assert writes_bypassing_the_writer(source) == []


# ----------------------------------------------------------------------------- claims


@pytest.fixture
def session():
    with io.session():
        yield


def test_a_folder_holding_someone_elses_files_is_refused(tmp_path, session):
    (tmp_path / "their-notes.txt").write_text("mine")
    with pytest.raises(WsolbenchError, match="holds files wsolbench did not write"):
        io.claim_folder(tmp_path, "output folder", "leaderboard")


def test_a_new_folder_gets_its_marker_with_its_first_file(tmp_path, session):
    out = tmp_path / "out"
    io.claim_folder(out, "output folder", "leaderboard")
    assert not out.exists()  # a claim creates nothing
    io.write_text(out / "results.csv", "x\n")
    assert io.is_ours(out, "leaderboard")
    assert sorted(p.name for p in out.iterdir()) == [".wsolbench", "results.csv"]


def test_a_folder_of_another_kind_is_refused(tmp_path):
    with io.session():
        io.claim_folder(tmp_path / "data", "benchmark folder", "synthetic-dataset")
        io.write_text(tmp_path / "data" / "synthetic.json", "{}")
    with io.session(), pytest.raises(WsolbenchError, match="synthetic-dataset output"):
        io.claim_folder(tmp_path / "data", "leaderboard folder", "leaderboard")


def test_an_older_wsolbench_folder_is_recognized_by_its_entries(tmp_path):
    (tmp_path / "results.csv").write_text("x")
    (tmp_path / "leaderboard.md").write_text("x")
    (tmp_path / "report.html").write_text("x")
    (tmp_path / "figures").mkdir()
    with io.session():
        io.claim_folder(tmp_path, "leaderboard folder", "leaderboard")
    (tmp_path / "notes.txt").write_text("x")
    with io.session(), pytest.raises(WsolbenchError, match="did not write"):
        io.claim_folder(tmp_path, "leaderboard folder", "leaderboard")


def test_a_symlinked_subfolder_leaving_the_claim_is_refused_up_front(tmp_path, session):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / ".wsolbench").write_text("")
    (out / "figures").symlink_to(elsewhere)
    with pytest.raises(WsolbenchError, match="symlink leaving it"):
        io.claim_folder(out, "leaderboard folder", "leaderboard")


def test_a_symlink_made_after_the_claim_is_refused_at_the_write(tmp_path, session):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    io.claim_folder(out, "output folder", "leaderboard")
    out.mkdir()
    (out / "figures").symlink_to(elsewhere)
    with pytest.raises(WsolbenchError, match="outside"):
        io.write_text(out / "figures" / "a.png", "x")
    assert list(elsewhere.iterdir()) == []


def test_a_subfolder_named_within_a_folder_must_stay_inside_it(tmp_path, session):
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    runs.mkdir()
    elsewhere.mkdir()
    (runs / "suite").symlink_to(elsewhere)
    with pytest.raises(WsolbenchError, match="outside"):
        io.claim_folder(runs / "suite", "runs folder", "runs", within=runs)


@pytest.mark.parametrize("part", ["../x.txt", "a/../../x.txt", "x" * 250 + ".txt"])
def test_a_path_that_climbs_or_is_too_long_is_refused(tmp_path, session, part):
    io.claim_folder(tmp_path / "out", "output folder", "leaderboard")
    with pytest.raises(WsolbenchError):
        io.write_text(tmp_path / "out" / part, "x")
    assert not (tmp_path / "x.txt").exists()


def test_a_write_no_claim_covers_is_a_bug_under_the_cli(tmp_path, session):
    with pytest.raises(io.UnclaimedWrite):
        io.write_text(tmp_path / "x.txt", "x")
    assert not (tmp_path / "x.txt").exists()


# ----------------------------------------------------------------------------- what is replaced


def test_special_files_are_never_replaced(tmp_path, session):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/null")):
        with pytest.raises(WsolbenchError, match="special file"):
            io.claim_file(path, "results file (--output)")
    with pytest.raises(WsolbenchError, match="is a folder"):
        io.claim_file(tmp_path, "results file (--output)")
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "target.json")
    with pytest.raises(WsolbenchError, match="symlink"):
        io.claim_file(link, "results file (--output)")
    assert fifo.is_fifo() and not (tmp_path / "target.json").exists()


def test_a_file_is_replaced_only_when_recognized_as_ours(tmp_path, session):
    theirs = tmp_path / "image_ids.txt"
    theirs.write_text("a.png\n")
    with pytest.raises(WsolbenchError, match="not a file wsolbench wrote"):
        io.claim_file(theirs, "results file (--output)", recognize=lambda p: p.suffix == ".json")
    ours = tmp_path / "r.json"
    ours.write_text("{}")
    io.claim_file(ours, "results file (--output)", recognize=lambda p: p.suffix == ".json")
    io.write_json(ours, {"a": 1})
    assert theirs.read_text() == "a.png\n" and '"a": 1' in ours.read_text()


def test_an_input_is_never_replaced_unless_with_the_same_bytes(tmp_path, session):
    out = tmp_path / "out"
    io.claim_folder(out, "leaderboard folder", "leaderboard")
    io.write_text(out / "results.json", "[1]\n")
    io.declare_inputs(out / "results.json")
    io.write_text(out / "results.json", "[1]\n")  # re-rendered as it is: fine
    with pytest.raises(WsolbenchError, match="own inputs"):
        io.write_text(out / "results.json", "[]\n")
    assert (out / "results.json").read_text() == "[1]\n"


def test_an_input_folder_is_never_claimed(tmp_path, session):
    io.declare_inputs(tmp_path)
    with pytest.raises(WsolbenchError, match="inputs"):
        io.claim_folder(tmp_path, "output folder")


# ----------------------------------------------------------------------------- failures


def test_a_full_disk_is_one_error_and_the_previous_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    io.write_text(path, "old")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "replace", disk_full)
    with pytest.raises(WsolbenchError, match="No space left on device") as error:
        io.write_text(path, "new")
    assert str(path) in str(error.value)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_the_serializers_own_errors_are_one_error(tmp_path, monkeypatch):
    """torch's serializer reports a full disk as RuntimeError, not OSError."""
    import torch

    path = tmp_path / "last.pt"
    io.save_torch(path, {"a": torch.zeros(2)})

    def failing(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(WsolbenchError, match="PytorchStreamWriter failed") as error:
        io.save_torch(path, {"a": torch.ones(2)})
    assert str(path) in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_file_size_limit_ends_a_command_in_one_line(tmp_path):
    """A quota (RLIMIT_FSIZE: writes fail with EFBIG) while `data synth` writes: one line
    naming the file, exit 2, and no temporary file left behind."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
        "from wsolbench.cli import main\n"
        f"sys.exit(main(['data', 'synth', '--out', {str(tmp_path / 'data')!r}, '--num-classes', '2',"
        " '--train-per-class', '1', '--val-per-class', '1', '--test-per-class', '1']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "data" in lines[0], lines
    leftovers = [p for p in (tmp_path / "data").rglob("*") if p.name.startswith(".wsolbench-")]
    assert leftovers == []


def test_a_group_that_fails_validation_leaves_no_trace(tmp_path):
    import numpy as np

    from wsolbench.data.metadata import Split, write_split
    from wsolbench.errors import MetadataError

    good = Split(["a.png", "b.png"], np.array([0, 1]), np.array([[4, 4], [4, 4]]))
    write_split(good, tmp_path / "test")
    before = {p.name: p.read_bytes() for p in (tmp_path / "test").iterdir()}
    duplicate = Split(["a.png", "a.png"], np.array([0, 1]), np.array([[4, 4], [4, 4]]))
    with pytest.raises(MetadataError, match="duplicate image id") as error:
        write_split(duplicate, tmp_path / "test")
    assert str(tmp_path / "test" / "image_ids.txt") in str(error.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "test").iterdir()} == before
