"""The digits demo world: its data, its teachers, and building, caching and exporting it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
import yaml

from tests.demo.conftest import TINY
from xdistill.data.task import load_task
from xdistill.demo import domains, nets, world
from xdistill.errors import ConfigError, XDistillError
from xdistill.teachers.zoo import load_zoo

ZOO_KEYS = ["name", "kind", "path", "input", "labels", "domain", "architecture"]
TASK_KEYS = {"name", "classes", "input", "description", "splits"}


def true_digits(images: np.ndarray) -> np.ndarray:
    """Look each image up among the untouched source images and return its real digit."""
    x, y = domains.source_part()
    digit_of = {image.tobytes(): label for image, label in zip(x, y)}
    return np.array([digit_of[image.tobytes()] for image in images])


# ---------------------------------------------------------------------------
# Data


def test_mnist_subset_is_500_per_digit_sorted_by_label():
    x, y = domains.load_mnist_subset()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [500] * 10
    assert (np.diff(y) >= 0).all()


def test_source_and_target_parts_share_no_image():
    x, y = domains.load_mnist_subset()
    source, target = domains.source_target_indices(y)
    assert len(source) == 3000 and len(target) == 2000
    assert not set(source.tolist()) & set(target.tolist())
    for digit in range(10):
        members = np.flatnonzero(y == digit)
        assert set(source[y[source] == digit]) == set(members[:300])
        assert set(target[y[target] == digit]) == set(members[-200:])
    source_images = {image.tobytes() for image in x[source]}
    assert not source_images & {image.tobytes() for image in x[target]}


def test_unknown_domain_names_the_available_ones():
    with pytest.raises(XDistillError, match="Unknown source domain 'rotate'. Did you mean 'rotated'"):
        domains.build_source_domain("rotate")


def test_source_target_split_rejects_too_few_images():
    with pytest.raises(XDistillError, match="needs 400 \\+ 200"):
        domains.source_target_indices(np.repeat(np.arange(10), 500), source_per_digit=400)


@pytest.mark.parametrize("name", list(domains.SOURCE_DOMAINS))
def test_source_domain_shapes_and_labels(name):
    domain = domains.build_source_domain(name, size=80, seed=1)
    assert domain.x.shape == (80, 28, 28) and domain.x.dtype == np.uint8
    assert domain.y.shape == (80,) and domain.y.dtype == np.int64
    assert set(domain.y.tolist()) <= set(range(len(domain.labels)))
    assert all(isinstance(label, str) for label in domain.labels)


def test_label_shifts_relabel_the_real_digits():
    clean = domains.build_source_domain("clean", 600)
    assert (clean.y == true_digits(clean.x)).all()
    partial = domains.build_source_domain("partial", 3000)
    assert len(partial.y) == 1500 and partial.labels == ["0", "1", "2", "3", "4"]
    assert (partial.y == true_digits(partial.x)).all()
    parity = domains.build_source_domain("parity", 600)
    assert parity.labels == ["even", "odd"] and (parity.y == true_digits(parity.x) % 2).all()
    decoy = domains.build_source_domain("decoy", 600)
    assert (decoy.y == true_digits(decoy.x)).mean() < 0.2


def test_image_shifts_change_the_images():
    clean = domains.build_source_domain("clean", 3000).x
    inverted = domains.build_source_domain("inverted", 3000).x
    assert {i.tobytes() for i in 255 - inverted} == {i.tobytes() for i in clean}
    for name in ["rotated", "lowres", "noisy", "blurred"]:
        shifted = domains.build_source_domain(name, 50).x
        assert not {i.tobytes() for i in shifted} & {i.tobytes() for i in clean}, name


def test_same_seed_gives_identical_arrays():
    for name in ["rotated", "noisy", "decoy"]:
        first = domains.build_source_domain(name, 50, seed=3)
        second = domains.build_source_domain(name, 50, seed=3)
        assert np.array_equal(first.x, second.x) and np.array_equal(first.y, second.y)
        assert not np.array_equal(first.x, domains.build_source_domain(name, 50, seed=4).x)
    first, second = domains.mnist_color_task(seed=2), domains.mnist_color_task(seed=2)
    assert [split.fingerprint for split in first.splits.values()] == [
        split.fingerprint for split in second.splits.values()
    ]


def test_generic_pretraining_data_pools_the_digit_domains():
    x, y = domains.generic_pretraining_data(size_per_domain=40)
    assert x.shape == (240, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert set(y.tolist()) <= set(range(10))


@pytest.mark.parametrize(
    "name, image_shape, test_size, unlabeled",
    [
        ("sk-digits", (28, 28), 500, 1197),
        ("mnist-color", (28, 28, 3), 600, 1300),
        ("mnist-noise", (28, 28), 600, 1300),
    ],
)
def test_target_task_splits(name, image_shape, test_size, unlabeled):
    task = domains.TARGET_TASKS.get(name)()
    assert task.name == name and task.classes == [str(d) for d in range(10)]
    for split in task.splits.values():
        assert split.x.dtype == np.uint8 and split.x.shape[1:] == image_shape
    assert task.labeled.y.dtype == np.int64 and task.test.y.dtype == np.int64
    assert np.bincount(task.labeled.y).tolist() == [10] * 10
    assert len(task.test) == test_size and np.bincount(task.test.y, minlength=10).min() >= test_size // 10 - 2
    assert len(task.unlabeled) == unlabeled


def test_few_label_split_is_a_partition():
    y = np.repeat(np.arange(4), 30)
    labeled, unlabeled, test = domains.few_label_split(y, labeled_per_class=5, test_size=40, seed=0)
    together = np.concatenate([labeled, unlabeled, test])
    assert sorted(together.tolist()) == list(range(len(y)))
    assert np.bincount(y[labeled]).tolist() == [5] * 4 and np.bincount(y[test]).tolist() == [10] * 4


def test_mnist_targets_are_built_from_target_images_only():
    # With its shift turned off, mnist-noise shows the images it is built from.
    task = domains.mnist_noise_task(sigma=0.0, salt_pepper=0.0)
    images = np.concatenate([split.x for split in task.splits.values()])
    target_x, target_y = domains.target_part()
    source_x, _ = domains.source_part()
    label_of = {image.tobytes(): label for image, label in zip(target_x, target_y)}
    assert sorted(label_of[image.tobytes()] for image in images) == sorted(target_y.tolist())
    assert not {image.tobytes() for image in images} & {image.tobytes() for image in source_x}
    assert [label_of[image.tobytes()] for image in task.test.x] == task.test.y.tolist()


# ---------------------------------------------------------------------------
# Teachers


@pytest.mark.parametrize("architecture", nets.ARCHITECTURES.names())
@pytest.mark.parametrize("num_classes", [2, 5, 10])
def test_teacher_returns_features_and_logits(architecture, num_classes):
    spec = nets.ARCHITECTURES.get(architecture)
    teacher = nets.build_teacher(architecture, num_classes, seed=0).eval()
    features, logits = teacher(nets.preprocess(np.zeros((3, 28, 28), np.uint8)))
    assert features.shape == (3, spec.feature_dim) and logits.shape == (3, num_classes)
    # at least 5x the default student's ~15k parameters
    assert nets.count_parameters(teacher) >= 75_000


def test_feature_dims_differ_by_family():
    dims = [nets.ARCHITECTURES.get(name).feature_dim for name in nets.ARCHITECTURES.names()]
    assert len(set(dims)) == len(dims)


def test_teacher_training_is_deterministic_and_learns():
    domain = domains.build_source_domain("clean", 300)

    def trained():
        teacher = nets.build_teacher("mlp", 10, seed=5)
        return nets.train_teacher(
            teacher, domain.x, domain.y, learning_rate=1e-3, epochs=8, seed=5, batch_size=32, max_shift=1
        )

    first, second = trained(), trained()
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert nets.accuracy(first, domain.x, domain.y) > 0.6


def test_random_shift_moves_each_image_by_at_most_max_shift():
    x = torch.zeros(8, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    shifted = nets.random_shift(x, 2, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0, as_tuple=True)[1:]
    assert len(rows) == 8 and (rows - 14).abs().max() <= 2 and (cols - 14).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1


# ---------------------------------------------------------------------------
# Building, caching, exporting


def test_tiny_world_writes_a_valid_zoo(tiny_world):
    _, built, lines = tiny_world
    assert sum("teacher" in line for line in lines) == len(world.TEACHER_PLAN)
    zoo = yaml.safe_load(built.zoo_path.read_text())
    manifest = json.loads((built.root / "manifest.json").read_text())
    assert [t["name"] for t in zoo["teachers"]] == built.teacher_names
    architectures = {t["architecture"] for t in zoo["teachers"]}
    assert architectures == {"cnn", "mlp", "vit"}
    x = nets.preprocess(domains.build_source_domain("clean", 5).x)
    for entry in zoo["teachers"]:
        assert list(entry) == ZOO_KEYS and entry["kind"] == "torchscript"
        assert entry["input"] == {"size": [28, 28], "channels": 1, "mean": [0.5], "std": [0.5]}
        stats = manifest["teachers"][entry["name"]]
        scripted = torch.jit.load(str(built.zoo_path.parent / entry["path"]))
        features, logits = scripted(x)
        assert features.shape == (5, stats["feature_dim"]) and logits.shape == (5, len(entry["labels"]))
        eager = nets.build_teacher(entry["architecture"], len(entry["labels"]), seed=0)
        weights = safetensors.torch.load_file(built.root / "teachers" / f"{entry['name']}.safetensors")
        eager.load_state_dict(weights)
        with torch.inference_mode():
            torch.testing.assert_close(eager.eval()(x), (features, logits))
        assert stats["parameters"] >= 75_000


def test_tiny_world_loads_with_the_zoo_and_task_readers(tiny_world):
    _, built, _ = tiny_world
    zoo = load_zoo(built.zoo_path)
    assert zoo.names == built.teacher_names
    images = domains.build_source_domain("noisy", 4).x
    for teacher, spec in zip(zoo.teachers(), zoo.specs):
        output = teacher.outputs(images)
        assert output.features.shape[0] == 4 and output.logits.shape == (4, len(spec.labels))
    for name, folder in built.task_paths.items():
        task = load_task(folder)
        assert task.name == name and task.num_classes == 10
        assert len(task.labeled) == 100 and len(task.test) in (500, 600)


def test_tiny_world_writes_valid_tasks(tiny_world):
    _, built, _ = tiny_world
    assert set(built.task_paths) == set(domains.TARGET_TASKS)
    for name, folder in built.task_paths.items():
        spec = yaml.safe_load((folder / "task.yaml").read_text())
        assert set(spec) == TASK_KEYS and spec["name"] == name and spec["input"] == "image"
        assert spec["splits"] == {"labeled": "labeled.npz", "unlabeled": "unlabeled.npz", "test": "test.npz"}
        for split, file in spec["splits"].items():
            with np.load(folder / file) as arrays:
                assert sorted(arrays.files) == (["x"] if split == "unlabeled" else ["x", "y"])
                assert arrays["x"].dtype == np.uint8
                if split != "unlabeled":
                    assert arrays["y"].dtype == np.int64 and arrays["y"].max() < len(spec["classes"])
    with np.load(built.generic_data_path) as generic:
        assert generic["x"].shape == (6 * TINY.domain_size, 28, 28)


def test_second_build_trains_nothing(tiny_world, monkeypatch):
    home, built, _ = tiny_world

    def refuse(*args, **kwargs):
        raise AssertionError("a complete world was trained again")

    monkeypatch.setattr(nets, "train_teacher", refuse)
    monkeypatch.setattr(domains, "load_mnist_subset", refuse)
    lines: list[str] = []
    again = world.build_world(home, progress=False, log=lines.append, config=TINY)
    assert again == built and lines == []


def test_build_resumes_and_recipe_change_rebuilds(tmp_path):
    lines: list[str] = []
    built = world.build_world(tmp_path, progress=False, log=lines.append, config=TINY)
    (built.root / "teachers" / "vit-decoy.pt").unlink()
    lines.clear()
    world.build_world(tmp_path, progress=False, log=lines.append, config=TINY)
    assert len(lines) == 1 and "vit-decoy" in lines[0]

    manifest_path = built.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["recipe_version"] = world.RECIPE_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    lines.clear()
    world.build_world(tmp_path, progress=False, log=lines.append, config=TINY)
    assert "rebuilding" in lines[0]
    assert sum("teacher" in line for line in lines) == len(world.TEACHER_PLAN)


def test_invalid_config_reports_every_problem(tmp_path):
    bad = world.WorldConfig(domain_size=5, epochs=0, labeled_per_class=0)
    with pytest.raises(ConfigError, match="3 problems") as error:
        world.build_world(tmp_path, progress=False, log=lambda line: None, config=bad)
    assert "'domain_size'" in str(error.value) and "'epochs'" in str(error.value)
    assert not any(tmp_path.iterdir())


def test_custom_config_never_touches_the_default_world(tmp_path):
    assert world.world_root(tmp_path, world.WorldConfig()) == tmp_path / "demo-world-v1"
    assert world.world_root(tmp_path, TINY) != tmp_path / "demo-world-v1"


def test_export_world_copies_tasks_zoo_and_teachers(tiny_world, tmp_path):
    home, _, _ = tiny_world
    dest = tmp_path / "export"
    exported = world.export_world(dest, home, progress=False, log=lambda line: None, config=TINY)
    zoo = yaml.safe_load((dest / "zoo.yaml").read_text())
    for entry in zoo["teachers"]:
        assert (dest / entry["path"]).is_file()
        assert (dest / "teachers" / f"{entry['name']}.safetensors").is_file()
    for name in domains.TARGET_TASKS:
        assert (dest / "tasks" / name / "task.yaml").is_file()
    assert exported.root == dest and exported.generic_data_path.is_file()
    with pytest.raises(XDistillError, match="already holds zoo.yaml"):
        world.export_world(dest, home, progress=False, log=lambda line: None, config=TINY)
    world.export_world(dest, home, progress=False, log=lambda line: None, config=TINY, overwrite=True)


def test_world_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDISTILL_HOME", str(tmp_path))
    assert world.world_home() == tmp_path
    monkeypatch.delenv("XDISTILL_HOME")
    assert "xdistill" in world.world_home().parts[-2:]


@pytest.mark.slow
def test_full_world_builds_with_good_teachers(tmp_path):
    lines: list[str] = []
    built = world.build_world(tmp_path, progress=False, log=lines.append)
    manifest = json.loads((built.root / "manifest.json").read_text())
    for name, stats in manifest["teachers"].items():
        if stats["domain"] == "decoy":
            assert stats["heldout_accuracy"] < 0.25, name
        else:
            assert stats["heldout_accuracy"] > 0.8, name
