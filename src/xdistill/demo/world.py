"""Build, cache and export the digits demo world.

The world lives under ``world_home() / "demo-world-v1"``::

    manifest.json                 what was built, by which recipe, with teacher stats
    zoo.yaml                      the teacher zoo (xdistill's zoo format)
    teachers/<name>.pt            TorchScript: preprocessed [N,1,28,28] -> (features, logits)
    teachers/<name>.safetensors   the same teacher's weights
    tasks/<name>/task.yaml        a target task (xdistill's task format) with
    tasks/<name>/{labeled,unlabeled,test}.npz
    generic-pretraining.npz       x, y: the digit-labelled source domains pooled

``build_world`` builds only what the manifest lacks, writing every file
atomically, so an interrupted build resumes where it stopped and a complete
world is found again without any training.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import yaml

from xdistill.data import save_task
from xdistill.data.splits import save_split_file
from xdistill.demo import domains, nets
from xdistill.errors import ConfigError, XDistillError, join_problems
from xdistill.home import xdistill_home
from xdistill.io import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text

# Bump whenever a change to the data, the shifts, the architectures or the training
# would change what gets built: worlds built by another version are rebuilt.
RECIPE_VERSION = 1
WORLD_FOLDER = "demo-world-v1"
GENERIC_FILE = "generic-pretraining.npz"

# (architecture, source domain): one teacher per domain, each family three times.
TEACHER_PLAN = [
    ("cnn", "clean"),
    ("mlp", "inverted"),
    ("cnn", "rotated"),
    ("vit", "lowres"),
    ("cnn", "noisy"),
    ("mlp", "blurred"),
    ("vit", "partial"),
    ("mlp", "parity"),
    ("vit", "decoy"),
]


@dataclass(frozen=True)
class WorldConfig:
    """What the world is built from; the defaults make the shipped world."""

    domain_size: int = 3000  # images per source domain (partial holds at most 1,500); 12..3000
    epochs: int | None = None  # epochs for every teacher; None uses each family's own (tests use 1)
    labeled_per_class: int = 10  # labelled images per class of every target task; 1..50
    seed: int = 0  # seeds every shift, split, initialisation and training run


@dataclass
class DemoWorld:
    """Where a built (or exported) demo world lies."""

    root: Path
    zoo_path: Path
    task_paths: dict[str, Path]
    teacher_names: list[str]
    generic_data_path: Path


def world_home() -> Path:
    """Where demo worlds are kept: xdistill's home (``$XDISTILL_HOME``, else the user cache folder)."""
    return xdistill_home()


def config_problems(config: WorldConfig) -> list[str]:
    problems = []
    if not 12 <= config.domain_size <= 3000:
        problems.append(f"'domain_size' must be an int in 12..3000. Got {config.domain_size!r}.")
    if config.epochs is not None and config.epochs < 1:
        problems.append(f"'epochs' must be an int >= 1, or None for each family's own. Got {config.epochs!r}.")
    if not 1 <= config.labeled_per_class <= 50:
        problems.append(f"'labeled_per_class' must be an int in 1..50. Got {config.labeled_per_class!r}.")
    return problems


def world_root(home: Path, config: WorldConfig) -> Path:
    """The shipped world's folder; any other config gets its own, so it never overwrites it."""
    if config == WorldConfig():
        return home / WORLD_FOLDER
    digest = zlib.crc32(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    return home / f"{WORLD_FOLDER}-custom-{digest:08x}"


def teacher_name(architecture: str, domain: str) -> str:
    return f"{architecture}-{domain}"


# ---------------------------------------------------------------------------
# Writing


def write_teacher(folder: Path, name: str, model: torch.nn.Module, example: torch.Tensor) -> None:
    """TorchScript file (what the zoo points at) and safetensors weights of one teacher."""
    model.eval()
    with warnings.catch_warnings():
        # The zoo format is TorchScript; newer torch warns that tracing is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example)
        atomic_write(folder / f"{name}.pt", lambda temporary: torch.jit.save(traced, str(temporary)))
    weights = {key: value.contiguous() for key, value in model.state_dict().items()}
    atomic_write_bytes(folder / f"{name}.safetensors", safetensors.torch.save(weights))


def zoo_entry(name: str, teacher: dict) -> dict:
    return {
        "name": name,
        "kind": "torchscript",
        "path": f"teachers/{name}.pt",
        "input": {"size": [28, 28], "channels": 1, "mean": [nets.INPUT_MEAN], "std": [nets.INPUT_STD]},
        "labels": teacher["labels"],
        "domain": teacher["domain_description"],
        "architecture": teacher["architecture"],
    }


# ---------------------------------------------------------------------------
# The manifest


def read_manifest(root: Path, config: WorldConfig, log: Callable[[str], None]) -> dict:
    """The manifest of ``root`` if it was built by this recipe and config, else a fresh one.

    A world built by another recipe is removed first, so no stale file outlives it.
    """
    fresh = {"recipe_version": RECIPE_VERSION, "config": dataclasses.asdict(config), "tasks": {}, "teachers": {}}
    path = root / "manifest.json"
    if not path.exists():
        return fresh
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log(f"demo world: unreadable manifest ({error}); rebuilding {root}")
        manifest = {}
    if manifest.get("recipe_version") == RECIPE_VERSION and manifest.get("config") == fresh["config"]:
        return manifest
    if manifest:
        log(f"demo world: built by recipe v{manifest.get('recipe_version')}, now v{RECIPE_VERSION}; rebuilding {root}")
    for stale in ("teachers", "tasks"):
        shutil.rmtree(root / stale, ignore_errors=True)
    (root / GENERIC_FILE).unlink(missing_ok=True)
    return fresh


def files_present(root: Path, entry: dict | None) -> bool:
    return entry is not None and all((root / f).exists() for f in entry["files"])


# ---------------------------------------------------------------------------
# Building


def train_demo_teacher(
    architecture: str, domain_name: str, config: WorldConfig, progress: bool
) -> tuple[torch.nn.Module, dict]:
    """Train one teacher on its source domain, holding out a sixth of it to measure accuracy."""
    name = teacher_name(architecture, domain_name)
    started = time.perf_counter()
    domain = domains.build_source_domain(domain_name, config.domain_size, config.seed)
    held_out = len(domain.x) // 6
    spec = nets.ARCHITECTURES.get(architecture)
    seed = zlib.crc32(f"{config.seed}/{name}".encode())
    model = nets.build_teacher(architecture, len(domain.labels), seed)
    nets.train_teacher(
        model,
        domain.x[held_out:],
        domain.y[held_out:],
        learning_rate=spec.learning_rate,
        epochs=config.epochs if config.epochs is not None else spec.epochs,
        batch_size=spec.batch_size,
        max_shift=spec.max_shift,
        seed=seed,
        progress=progress,
        description=name,
    )
    stats = {
        "domain": domain_name,
        "domain_description": domain.description,
        "architecture": architecture,
        "labels": domain.labels,
        "parameters": nets.count_parameters(model),
        "feature_dim": spec.feature_dim,
        "train_images": len(domain.x) - held_out,
        "heldout_images": held_out,
        "heldout_accuracy": round(nets.accuracy(model, domain.x[:held_out], domain.y[:held_out]), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "files": [f"teachers/{name}.pt", f"teachers/{name}.safetensors"],
    }
    return model, stats


def build_world(
    home: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    config: WorldConfig | None = None,
) -> DemoWorld:
    """Build whatever the demo world still lacks and say where it lies.

    The first call trains the teachers (about two minutes on two CPU cores); later
    calls find everything in the manifest and return at once.
    """
    config = config or WorldConfig()
    problems = config_problems(config)
    if problems:
        raise ConfigError(join_problems(problems, "Invalid demo world config"))
    root = world_root(Path(home) if home is not None else world_home(), config)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XDistillError(
            f"Cannot create the demo world folder {root}: {error}. "
            "Set XDISTILL_HOME to a writable folder."
        ) from error
    manifest = read_manifest(root, config, log)

    for name, make_task in domains.TARGET_TASKS.items():
        if files_present(root, manifest["tasks"].get(name)):
            continue
        task = make_task(labeled_per_class=config.labeled_per_class, seed=config.seed)
        save_task(task, root / "tasks" / name)
        sizes = {split: len(data) for split, data in task.splits.items()}
        files = [f"tasks/{name}/{split}.npz" for split in task.splits] + [f"tasks/{name}/task.yaml"]
        manifest["tasks"][name] = {**sizes, "files": files}
        atomic_write_json(root / "manifest.json", manifest)
        log(f"demo world: task {name}: " + ", ".join(f"{n} {split}" for split, n in sizes.items()))

    if not files_present(root, manifest.get("generic")):
        x, y = domains.generic_pretraining_data(config.domain_size, config.seed)
        save_split_file(root / GENERIC_FILE, x, y, "image", domains.DIGITS)
        manifest["generic"] = {"images": len(y), "domains": domains.DIGIT_DOMAINS, "files": [GENERIC_FILE]}
        atomic_write_json(root / "manifest.json", manifest)
        log(f"demo world: generic pretraining set: {len(y)} images from {', '.join(domains.DIGIT_DOMAINS)}")

    for architecture, domain_name in TEACHER_PLAN:
        name = teacher_name(architecture, domain_name)
        if files_present(root, manifest["teachers"].get(name)):
            continue
        model, stats = train_demo_teacher(architecture, domain_name, config, progress)
        write_teacher(root / "teachers", name, model, nets.preprocess(np.zeros((2, 28, 28), np.uint8)))
        manifest["teachers"][name] = stats
        atomic_write_json(root / "manifest.json", manifest)
        log(f"demo world: teacher {name:<13} {stats['domain_description']:<40} {architecture} "
            f"{stats['parameters']:>7,} params  held-out acc {stats['heldout_accuracy']:.3f}  "
            f"{stats['seconds']:.1f}s")

    names = [teacher_name(a, d) for a, d in TEACHER_PLAN]
    zoo = {"teachers": [zoo_entry(name, manifest["teachers"][name]) for name in names]}
    zoo_text = yaml.safe_dump(zoo, sort_keys=False, default_flow_style=None)
    zoo_path = root / "zoo.yaml"
    if not zoo_path.exists() or zoo_path.read_text() != zoo_text:
        atomic_write_text(zoo_path, zoo_text)
    return DemoWorld(
        root=root,
        zoo_path=zoo_path,
        task_paths={name: root / "tasks" / name for name in manifest["tasks"]},
        teacher_names=names,
        generic_data_path=root / GENERIC_FILE,
    )


def export_world(
    dest: Path,
    home: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    config: WorldConfig | None = None,
    overwrite: bool = False,
) -> DemoWorld:
    """Copy the demo world (built first if needed) to ``dest``: ``tasks/``, ``zoo.yaml``,
    ``teachers/`` and the generic pretraining set."""
    dest = Path(dest)
    targets = [dest / "zoo.yaml", dest / "teachers", dest / GENERIC_FILE]
    targets += [dest / "tasks" / name for name in domains.TARGET_TASKS]
    existing = [str(p.relative_to(dest)) for p in targets if p.exists()]
    if existing and not overwrite:
        raise XDistillError(
            f"Cannot export the demo world to {dest}: it already holds {', '.join(existing)}. "
            "Choose an empty folder or pass overwrite=True."
        )
    world = build_world(home, progress, log, config)
    skip_temporary = shutil.ignore_patterns(".*.tmp")
    for name, folder in world.task_paths.items():
        shutil.copytree(folder, dest / "tasks" / name, dirs_exist_ok=True, ignore=skip_temporary)
    shutil.copytree(world.root / "teachers", dest / "teachers", dirs_exist_ok=True, ignore=skip_temporary)
    shutil.copy2(world.generic_data_path, dest / GENERIC_FILE)
    shutil.copy2(world.zoo_path, dest / "zoo.yaml")
    log(f"demo world: exported {len(world.teacher_names)} teachers and {len(world.task_paths)} tasks to {dest}")
    return DemoWorld(
        root=dest,
        zoo_path=dest / "zoo.yaml",
        task_paths={name: dest / "tasks" / name for name in world.task_paths},
        teacher_names=world.teacher_names,
        generic_data_path=dest / GENERIC_FILE,
    )
