"""Safe loading: nothing untrusted is unpickled.

The source is checked call by call; then a malicious pickle, whose ``__reduce__``
would create a marker file, is offered everywhere xdistill reads a file: as a
teacher, a checkpoint, a cache shard, a split, a module teacher's weights, a
saved student and a pretrained student. Each is refused (or, for a shard,
recomputed) with the marker never created.
"""

from __future__ import annotations

import ast
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.cli.test_cli import run_cli
from xdistill.errors import XDistillError

SRC = Path(__file__).resolve().parents[2] / "src" / "xdistill"


class Payload:
    """Unpickling this object runs ``exec``, which creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(Payload(path)))  # the payload is live: plain unpickling runs it
    assert path.exists()
    path.unlink()
    return path


def evil_files(folder: Path, marker: Path) -> dict[str, Path]:
    """The payload as a raw pickle, as a torch.save archive, and inside a real TorchScript archive."""
    from tests.conftest import TinyNet

    folder.mkdir(parents=True, exist_ok=True)
    files = {"pickle": folder / "evil.pkl", "torch.save": folder / "evil-save.pt", "torchscript": folder / "evil-script.pt"}
    files["pickle"].write_bytes(pickle.dumps(Payload(marker)))
    torch.save({"weight": Payload(marker)}, files["torch.save"])
    good = folder / "good.pt"
    torch.jit.save(torch.jit.trace(TinyNet().eval(), torch.zeros(2, 1, 8, 8), strict=False), str(good))
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(files["torchscript"], "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, pickle.dumps(Payload(marker), protocol=2) if item.filename.endswith("constants.pkl") else data)
    return files


# -- the source ------------------------------------------------------------------------------

def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            yield node, f"{node.func.value.id}.{node.func.attr}"


def _keyword(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_source_never_unpickles_untrusted_files():
    problems, joblib_sites = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(SRC.parent)
        for node, name in _calls(ast.parse(text)):
            line = f"{where}:{node.lineno} {name}"
            if name == "torch.load" and _keyword(node, "weights_only") is not True:
                problems.append(f"{line} without weights_only=True")
            elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
                problems.append(f"{line} without allow_pickle=False")
            elif name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
                          "cloudpickle.load", "cloudpickle.loads", "marshal.load", "marshal.loads", "shelve.open",
                          "yaml.load", "yaml.unsafe_load", "yaml.full_load", "pd.read_pickle", "pandas.read_pickle"):
                problems.append(line)
            elif name == "joblib.load":
                joblib_sites.append((path, node))
    assert problems == []
    # joblib (pickle) is read in one place only, and only after the zoo entry said 'trust: true'.
    assert [p.name for p, _ in joblib_sites] == ["callable.py"]
    path, node = joblib_sites[0]
    function = next(f for f in ast.walk(ast.parse(path.read_text())) if isinstance(f, ast.FunctionDef)
                    and f.lineno <= node.lineno <= f.end_lineno)
    first = function.body[0]
    assert isinstance(first, ast.If) and "trust" in ast.unparse(first.test) and isinstance(first.body[0], ast.Raise)


# -- teachers --------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["pickle", "torch.save", "torchscript"])
def test_torchscript_teacher_never_runs_a_pickle(form, tiny_task, tiny_zoo, tmp_path, marker, capsys):
    """torch.jit.load reads archives with TorchScript's own unpickler, which resolves no Python callable."""
    evil = evil_files(tmp_path / "evil", marker)[form]
    shutil.copy(evil, tiny_zoo.parent / "t1.pt")
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", str(cache)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a TorchScript file" in err and "Traceback" not in err, err
    assert "()" not in err  # the reason is named, not blank
    assert not marker.exists()
    assert not cache.exists()  # every teacher is loaded before anything is written


def _module_zoo(folder: Path, weights: str) -> Path:
    zoo = folder / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({"teachers": [{
        "name": "m", "kind": "module", "factory": "tests.conftest:TinyNet", "weights": weights,
        "input": {"size": [8, 8], "channels": 1}}]}))
    return zoo


def test_module_teacher_weights_must_be_safetensors(tiny_task, tmp_path, marker, capsys):
    files = evil_files(tmp_path / "zoo", marker)
    zoo = _module_zoo(tmp_path / "zoo", files["torch.save"].name)
    assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(zoo), "--cache", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert "'weights' must be a .safetensors state dict" in err and "Traceback" not in err, err
    # A pickle under a .safetensors name is read by safetensors, which has no code to run.
    shutil.copy(files["pickle"], tmp_path / "zoo" / "evil.safetensors")
    zoo = _module_zoo(tmp_path / "zoo", "evil.safetensors")
    assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(zoo), "--cache", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert "is not a safetensors file" in err and "Traceback" not in err, err
    assert not marker.exists() and not (tmp_path / "c").exists()


def test_callable_teacher_pickle_needs_trust(tiny_task, tmp_path, marker, capsys):
    files = evil_files(tmp_path / "zoo", marker)
    zoo = tmp_path / "zoo" / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({"teachers": [{"name": "c", "kind": "callable", "path": files["pickle"].name}]}))
    assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(zoo), "--cache", str(tmp_path / "c")) == 2
    assert "trust: true" in capsys.readouterr().err
    assert not marker.exists()


def test_timm_checkpoint_is_read_weights_only(tmp_path, marker):
    from xdistill.teachers.timm_teacher import load_checkpoint

    files = evil_files(tmp_path / "evil", marker)
    shutil.copy(files["pickle"], tmp_path / "evil.safetensors")
    for path in (files["torch.save"], files["pickle"], tmp_path / "evil.safetensors"):
        with pytest.raises(XDistillError), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch notes the pickle protocol before refusing
            load_checkpoint(path, "t")
    assert not marker.exists()


# -- run outputs and data --------------------------------------------------------------------

def test_pickled_checkpoint_is_refused_on_resume(tiny_task, tmp_path, marker, capsys):
    out = tmp_path / "run"
    args = ["distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(out), "--epochs", "1",
            "batch_size=4", "progress=false"]
    assert run_cli(*args) == 0
    files = evil_files(tmp_path / "evil", marker)
    for form in ("pickle", "torch.save"):
        shutil.copy(files[form], out / "checkpoint.safetensors")
        capsys.readouterr()
        assert run_cli(*args, "--resume") == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "is damaged" in err and "Traceback" not in err, err
    assert not marker.exists()


def test_pickled_student_and_pretrained_weights_are_refused(tiny_task, tmp_path, marker, capsys):
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(out), "--epochs", "1",
                   "batch_size=4", "progress=false") == 0
    files = evil_files(tmp_path / "evil", marker)
    shutil.copy(files["torch.save"], out / "student.safetensors")
    capsys.readouterr()
    assert run_cli("eval", str(out), "--task", str(tiny_task)) == 2
    assert "is not a safetensors file" in capsys.readouterr().err
    init = tmp_path / "generic.safetensors"
    shutil.copy(files["pickle"], init)
    assert run_cli("distill", "--task", str(tiny_task), "--method", "finetune", "--out", str(tmp_path / "ft"),
                   f"init={init}", "progress=false") == 2
    assert "is not a safetensors file" in capsys.readouterr().err
    assert not marker.exists()


def test_pickled_cache_shard_is_recomputed(tiny_task, tiny_zoo, tmp_path, marker):
    from tests.reliability.files import cache_differences
    from xdistill.cache import CacheWarning, TeacherCache, cache_task
    from xdistill.data import load_task
    from xdistill.teachers import load_zoo

    task = load_task(tiny_task)
    cache = TeacherCache(tmp_path / "cache", batch_size=4, shard_size=8, progress=False)
    cache_task(task, load_zoo(tiny_zoo).teachers(), cache)
    shutil.copytree(tmp_path / "cache", tmp_path / "reference")
    teacher = load_zoo(tiny_zoo).teachers()[0]
    files = evil_files(tmp_path / "evil", marker)
    shutil.copy(files["pickle"], cache.store.shard_path(cache.key(teacher, task.unlabeled), 1))
    shutil.copy(files["torch.save"], cache.store.shard_path(cache.key(teacher, task.labeled), 0))
    assert cache.lookup(teacher, task.unlabeled) is None  # never returned as data
    with pytest.warns(CacheWarning, match="unreadable"):
        summary = cache_task(task, load_zoo(tiny_zoo).teachers(), cache)
    assert summary.recomputed_shards == 2 and summary.queries == {"t0": 8 + 8}
    assert not marker.exists()
    assert cache_differences(tmp_path / "cache", tmp_path / "reference") == []


def test_npz_split_with_object_array_is_refused(tiny_task, tmp_path, marker, capsys):
    from xdistill.data import load_task

    with np.load(tiny_task / "test.npz") as data:
        clean = dict(data)
    for key in ("x", "y"):
        arrays = dict(clean)
        arrays[key] = np.array([Payload(marker)] * len(arrays["y"]), dtype=object)
        np.savez(tiny_task / "test.npz", **arrays)
        with pytest.raises(XDistillError, match="refuses to unpickle"):
            load_task(tiny_task)
        assert run_cli("distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(tmp_path / "o")) == 2
        assert "refuses to unpickle" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "o").exists()
