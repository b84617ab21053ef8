"""The diffusion teacher kind (xdistill's denoiser folder and a tiny diffusers UNet2DModel saved locally), the
generation task format and its errors, and the sampler's cost accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from xdistill.errors import XDistillError
from xdistill.kinds.generation.flow import network_evaluations, noisy, sample_images, velocity_target
from xdistill.kinds.generation.task import load_generation_task
from xdistill.teachers.zoo import load_zoo

diffusers = pytest.importorskip("diffusers")

@pytest.fixture
def diffusers_folder(tmp_path):
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, num_class_embeds=4)
    unet.save_pretrained(tmp_path / "pipe" / "unet", safe_serialization=True)
    diffusers.DDPMScheduler(num_train_timesteps=100, prediction_type="epsilon").save_pretrained(tmp_path / "pipe" / "scheduler")
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"teachers": [{"name": "tiny-ddpm", "kind": "diffusion",
                                                                      "path": "pipe"}]}))
    return tmp_path, unet

def test_diffusers_unet_gives_the_flow_velocity_of_its_noise_prediction(diffusers_folder):
    folder, unet = diffusers_folder
    teacher = load_zoo(folder / "zoo.yaml").teachers()[0]
    teacher.setup()
    denoiser = teacher.denoiser
    assert denoiser.num_classes == 3 and denoiser.input_shape == (1, 8, 8)
    bar = diffusers.DDPMScheduler(num_train_timesteps=100).alphas_cumprod[50].double()
    # the flow time whose signal-to-noise ratio is DDPM step 50's: (1 - t)^2 / t^2 = bar / (1 - bar)
    t = float(1.0 / (1.0 + torch.sqrt(bar / (1 - bar))))
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 2])
    with torch.no_grad():
        got = denoiser.velocity(x, torch.full((2,), t), y)
        scale = np.sqrt((1 - t) ** 2 + t ** 2)
        x_vp = x / scale
        eps = unet.eval()(x_vp, torch.full((2,), 50.0), class_labels=y).sample
        a, b = float(torch.sqrt(bar)), float(torch.sqrt(1 - bar))
        expected = eps - (x_vp - b * eps) / a
    # float32 network passes on both sides; the interpolated time is 50 up to float64 round-off
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the null class of guidance is the last class embedding
    with torch.no_grad():
        null = denoiser.velocity(x, torch.full((2,), t), torch.tensor([3, 3]))
        direct = unet(x_vp, torch.full((2,), 50.0), class_labels=torch.tensor([3, 3])).sample
    torch.testing.assert_close(null, direct - (x_vp - b * direct) / a, rtol=1e-4, atol=1e-4)
    images, labels = sample_images(denoiser, 3, steps=2, guidance=2.0, seed=0)
    assert images.shape == (3, 1, 8, 8) and torch.isfinite(images).all()

def test_denoiser_folder_round_trip(gen_world):
    teacher = load_zoo(gen_world.zoo).teachers()[0]
    teacher.setup()
    assert teacher.guidance == 2.0 and teacher.steps == 8
    with pytest.raises(XDistillError, match="no classification outputs"):
        teacher.outputs(np.zeros((1, 8, 8), np.uint8))

def test_zoo_entry_pointing_nowhere_is_refused(tmp_path):
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"teachers": [{"name": "x", "kind": "diffusion", "path": "none"}]}))
    with pytest.raises(XDistillError, match="is not a folder"):
        load_zoo(tmp_path / "zoo.yaml")

def test_flow_path_and_costs():
    x0, noise = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x_t = noisy(x0, noise, t)
    torch.testing.assert_close(x_t[0], x0[0])
    torch.testing.assert_close(x_t[3], noise[3])
    # along the straight path, x_t moves with the constant velocity eps - x0
    torch.testing.assert_close(noisy(x0, noise, t + 0.1) - x_t, 0.1 * velocity_target(x0, noise))
    assert network_evaluations(4, 2.0) == 8 and network_evaluations(4, 1.0) == 4
    assert network_evaluations(4, 2.0, reads_guidance=True) == 4

def write_task(folder, train, test, classes=("a", "b")):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", **train)
    np.savez(folder / "test.npz", **test)
    (folder / "task.yaml").write_text(yaml.safe_dump({"kind": "generation", "name": "t", "classes": list(classes),
                                                      "splits": {"train": "train.npz", "test": "test.npz"}}))
    return folder

def test_task_loads_and_reports_every_problem_at_once(tmp_path):
    good = {"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0, 1, 0, 1])}
    task = load_generation_task(write_task(tmp_path / "ok", good, good))
    assert task.image_shape == (1, 8, 8) and task.classes == ["a", "b"] and len(task.splits["test"]) == 4
    bad_train = {"x": np.zeros((4, 8, 8), np.float32), "y": np.array([0, 1, 0, 5])}
    bad_test = {"images": np.zeros((2, 8, 8), np.uint8)}
    with pytest.raises(XDistillError) as error:
        load_generation_task(write_task(tmp_path / "bad", bad_train, bad_test))
    message = str(error.value)
    assert "'x' must be uint8" in message and "labels must lie in 0..1" in message
    assert "has no array 'x', 'y' (found: 'images')" in message

def test_task_yaml_unknown_key(tmp_path):
    good = {"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, 1])}
    folder = write_task(tmp_path / "t", good, good)
    raw = yaml.safe_load((folder / "task.yaml").read_text())
    raw["input"] = "image"
    (folder / "task.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(XDistillError, match="Unknown key 'input' for kind generation"):
        load_generation_task(folder)


def test_a_diffusers_teacher_needs_a_student_size(diffusers_folder, tmp_path):
    from xdistill.pipeline.distill import distill
    from xdistill.train.config import DistillConfig

    folder, _ = diffusers_folder
    images = {"x": np.zeros((6, 8, 8), np.uint8), "y": np.array([0, 1, 2, 0, 1, 2])}
    task = write_task(tmp_path / "task", images, images, classes=("a", "b", "c"))
    config = DistillConfig(task=str(task), zoo=str(folder / "zoo.yaml"), method="consistency", out=str(tmp_path / "r"),
                           iterations=1, progress=False)
    with pytest.raises(XDistillError, match="cannot be copied into a unet student"):
        distill(config)
