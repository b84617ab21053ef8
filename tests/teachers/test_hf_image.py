"""``kind: hf`` with ``modality: image``: tiny randomly initialised ViT, ConvNeXt and CLIP folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xdistill.errors import XDistillError
from xdistill.teachers import Teacher, create_teacher, load_zoo

transformers = pytest.importorskip("transformers")

SIZE = 32
RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, size=(5, 12, 12), dtype=np.uint8)  # N x H x W, as MNIST-like tasks store them


def _save_processor(folder: Path, processor_class: str, **kw) -> None:
    # The PIL processors need no torchvision; transformers 4 names them without the suffix.
    cls = getattr(transformers, processor_class + "Pil", None) or getattr(transformers, processor_class)
    cls(**kw).save_pretrained(str(folder))


def write_vit(folder: Path, seed: int = 0, labels: tuple[str, ...] | None = None) -> Path:
    """A 1-layer ViT backbone (or, with ``labels``, a ViTForImageClassification) on 32 x 32 images."""
    common = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  image_size=SIZE, patch_size=8)
    torch.manual_seed(seed)
    if labels:
        config = transformers.ViTConfig(**common, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={l: i for i, l in enumerate(labels)})
        model = transformers.ViTForImageClassification(config)
    else:
        model = transformers.ViTModel(transformers.ViTConfig(**common))
    model.save_pretrained(str(folder))
    _save_processor(folder, "ViTImageProcessor", size={"height": SIZE, "width": SIZE})
    return folder


def write_convnext(folder: Path, seed: int = 0) -> Path:
    config = transformers.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=SIZE)
    torch.manual_seed(seed)
    transformers.ConvNextModel(config).save_pretrained(str(folder))
    _save_processor(folder, "ConvNextImageProcessor", size={"shortest_edge": SIZE})
    return folder


def _clip_vision_config():
    return transformers.CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=SIZE, patch_size=8, projection_dim=12)


def write_clip_vision(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    transformers.CLIPVisionModelWithProjection(_clip_vision_config()).save_pretrained(str(folder))
    _save_processor(folder, "CLIPImageProcessor", size={"shortest_edge": SIZE},
                    crop_size={"height": SIZE, "width": SIZE})
    return folder


def write_clip(folder: Path, seed: int = 0) -> Path:
    """A whole CLIPModel (text tower included), as openai/clip-* folders hold it."""
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
                max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    config = transformers.CLIPConfig(text_config=text, vision_config=_clip_vision_config().to_dict(),
                                     projection_dim=12)
    torch.manual_seed(seed)
    transformers.CLIPModel(config).save_pretrained(str(folder))
    _save_processor(folder, "CLIPImageProcessor", size={"shortest_edge": SIZE},
                    crop_size={"height": SIZE, "width": SIZE})
    return folder


def write_dinov2(folder: Path, seed: int = 0) -> Path:
    config = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                                       image_size=SIZE, patch_size=8)
    torch.manual_seed(seed)
    transformers.Dinov2Model(config).save_pretrained(str(folder))
    _save_processor(folder, "BitImageProcessor", size={"shortest_edge": SIZE},
                    crop_size={"height": SIZE, "width": SIZE})
    return folder


def write_resnet_classifier(folder: Path, seed: int = 0) -> Path:
    """A ResNetForImageClassification: its head flattens a pooled [N, C, 1, 1] map."""
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4,
                                       architectures=["ResNetForImageClassification"])
    torch.manual_seed(seed)
    transformers.ResNetForImageClassification(config).save_pretrained(str(folder))
    _save_processor(folder, "ConvNextImageProcessor", size={"shortest_edge": SIZE})
    return folder


WRITERS = {"vit": write_vit, "convnext": write_convnext, "clip-vision": write_clip_vision, "dinov2": write_dinov2,
           "resnet-classifier": write_resnet_classifier}


def _write_zoo(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}, sort_keys=False))
    return path


def _teacher(folder: Path, **entry) -> Teacher:
    zoo = load_zoo(_write_zoo(folder, [{"name": "t", "kind": "hf", "modality": "image", **entry}]))
    return create_teacher(zoo.specs[0])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf-image")
    for name, write in WRITERS.items():
        write(root / name)
    write_vit(root / "vit-classifier", labels=("cat", "dog", "fox"))
    write_clip(root / "clip")
    return root


@pytest.mark.parametrize("name, dim", [("vit", 16), ("convnext", 16), ("dinov2", 16), ("clip-vision", 12),
                                       ("clip", 12)])
def test_backbones_give_features_only(models, name, dim):
    teacher = _teacher(models, path=name)
    assert isinstance(teacher, Teacher)
    out = teacher.outputs(GREY)
    assert out.features.shape == (5, dim) and out.features.dtype == torch.float32
    assert out.logits is None and teacher.labels is None
    assert torch.isfinite(out.features).all() and not teacher.model.training
    fresh = _teacher(models, path=name, batch_size=2).outputs(GREY)  # a second load, in batches of 2
    torch.testing.assert_close(fresh.features, out.features, rtol=1e-5, atol=1e-6)


def test_classifier_gives_logits_and_its_label_names(models):
    teacher = _teacher(models, path="vit-classifier", task="classification")
    out = teacher.outputs(GREY)
    assert out.features.shape == (5, 16) and out.logits.shape == (5, 3) and out.logits.dtype == torch.float32
    assert teacher.labels == ["cat", "dog", "fox"]
    # The features are the head's input: the head applied to them gives the logits.
    head = teacher.model.classifier
    torch.testing.assert_close(head(out.features), out.logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(XDistillError, match="returned 3 logits per sample but its zoo entry declares 2 labels"):
        _teacher(models, path="vit-classifier", labels=["a", "b"]).outputs(GREY)
    resnet = _teacher(models, path="resnet-classifier", labels=["w", "x", "y", "z"])
    out = resnet.outputs(GREY)
    assert out.features.shape == (5, 16) and out.logits.shape == (5, 4) and resnet.labels == ["w", "x", "y", "z"]
    torch.testing.assert_close(resnet.model.classifier(out.features), out.logits, rtol=1e-5, atol=1e-6)


def test_features_are_the_documented_outputs_of_each_family(models):
    """ViT: pooler_output; CLIPModel: get_image_features; CLIP vision: image_embeds; saved processor input."""
    vit, clip, clip_vision = (_teacher(models, path=p) for p in ("vit", "clip", "clip-vision"))
    for t in (vit, clip, clip_vision):
        t.setup()
    rgb = np.repeat(GREY[..., None], 3, axis=-1)
    pixels = vit.processor(images=list(rgb), return_tensors="pt", input_data_format="channels_last")["pixel_values"]
    assert pixels.shape == (5, 3, SIZE, SIZE)
    flat = vit.processor(images=[np.full((12, 12, 3), 200, np.uint8)], return_tensors="pt",
                         input_data_format="channels_last")["pixel_values"]
    # ViT's processor: resize (a flat picture stays flat), scale to [0, 1], then (x - 0.5) / 0.5; float32 rounding.
    torch.testing.assert_close(flat, torch.full((1, 3, SIZE, SIZE), (200 / 255 - 0.5) / 0.5), rtol=0, atol=1e-6)
    with torch.inference_mode():
        expected = vit.model(pixel_values=pixels).pooler_output
    torch.testing.assert_close(vit.outputs(GREY).features, expected, rtol=1e-5, atol=1e-6)
    clip_pixels = clip.processor(images=list(rgb), return_tensors="pt", input_data_format="channels_last")
    with torch.inference_mode():
        embedded = clip.model.get_image_features(pixel_values=clip_pixels["pixel_values"])
        embedded = embedded if isinstance(embedded, torch.Tensor) else embedded.pooler_output
        projected = clip_vision.model(pixel_values=clip_pixels["pixel_values"]).image_embeds
    torch.testing.assert_close(clip.outputs(GREY).features, embedded, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(clip_vision.outputs(GREY).features, projected, rtol=1e-5, atol=1e-6)


def test_raw_image_layouts_agree(models):
    """uint8 grey, float grey in [0, 1] and uint8 RGB with equal channels are the same pictures."""
    teacher = _teacher(models, path="convnext")
    grey = teacher.outputs(GREY).features
    torch.testing.assert_close(teacher.outputs(GREY.astype(np.float32) / 255).features, grey)
    torch.testing.assert_close(teacher.outputs(np.repeat(GREY[..., None], 3, axis=-1)).features, grey)
    other = teacher.outputs(255 - GREY).features
    assert (other - grey).abs().max() > 1e-3  # the inputs reach the model


def test_backbone_saved_without_its_pooler_falls_back_to_the_mean_hidden_state(tmp_path):
    folder = write_vit(tmp_path / "vit")
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("pooler.")}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    teacher = _teacher(tmp_path, path="vit")
    features = teacher.outputs(GREY).features
    assert teacher.route == "mean"
    pixels = teacher.processor(images=list(np.repeat(GREY[..., None], 3, axis=-1)), return_tensors="pt",
                               input_data_format="channels_last")["pixel_values"]
    with torch.inference_mode():
        hidden = teacher.model(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(features, hidden.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_teacher(tmp_path, path="vit").outputs(GREY).features, features)  # nothing random


def test_fingerprint_covers_weights_and_preprocessing(tmp_path):
    write_vit(tmp_path / "vit")
    before = _teacher(tmp_path, path="vit").fingerprint()
    assert _teacher(tmp_path, path="vit", batch_size=3).fingerprint() == before
    assert _teacher(tmp_path, path="vit", task="classification").fingerprint() == before
    processor = json.loads((tmp_path / "vit" / "preprocessor_config.json").read_text())
    processor["image_mean"] = [0.4, 0.4, 0.4]
    (tmp_path / "vit" / "preprocessor_config.json").write_text(json.dumps(processor))
    normalised_otherwise = _teacher(tmp_path, path="vit").fingerprint()
    assert normalised_otherwise != before
    write_vit(tmp_path / "vit", seed=1)
    assert _teacher(tmp_path, path="vit").fingerprint() not in (before, normalised_otherwise)


def test_zoo_entry_problems_are_reported_together(tmp_path):
    write_vit(tmp_path / "vit")
    (tmp_path / "no-processor").mkdir()
    (tmp_path / "vit" / "config.json").rename(tmp_path / "no-processor" / "config.json")
    entries = [
        {"name": "a", "kind": "hf", "modality": "image", "path": "vit", "task": "causal-lm", "pooling": "cls",
         "input": {"size": [32, 32]}},
        {"name": "b", "kind": "hf", "modality": "image", "path": "no-processor"},
        {"name": "c", "kind": "hf", "modality": "image", "path": "./missing"},
    ]
    with pytest.raises(XDistillError) as raised:
        load_zoo(_write_zoo(tmp_path, entries))
    message = str(raised.value)
    assert "teacher 'a': 'pooling' does not apply to image models" in message
    assert "teacher 'a': 'input' does not apply to image models" in message
    assert "teacher 'a': 'task: causal-lm' is for text models" in message
    assert f"teacher 'a': The model folder '{tmp_path / 'vit'}' has no config.json" in message
    assert f"teacher 'b': The model folder '{tmp_path / 'no-processor'}' has no preprocessor_config.json" in message
    assert f"teacher 'c': The model folder '{tmp_path / '.' / 'missing'}' does not exist" in message
    with pytest.raises(XDistillError, match="'task' must be one of classification, causal-lm. Got 'detection'"):
        load_zoo(_write_zoo(tmp_path, [{"name": "d", "kind": "hf", "modality": "image", "path": "vit",
                                        "task": "detection"}]))


def test_folder_with_missing_weights_is_refused_at_setup(tmp_path):
    folder = write_vit(tmp_path / "vit")
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if "encoder.layer.0.output" not in k},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    teacher = _teacher(tmp_path, path="vit")
    with pytest.raises(XDistillError, match=f"the model folder '{folder}' lacks 2 weights of ViTModel"):
        teacher.setup()
    (folder / "model.safetensors").unlink()
    with pytest.raises(XDistillError, match=f"Teacher 't': cannot load a hf model from '{folder}'"):
        _teacher(tmp_path, path="vit").setup()


# --- through a zoo and the real CLI ---------------------------------------------------------------

def _cli(*argv: str) -> None:
    from xdistill.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 0, argv


def test_cli_ranks_and_distills_image_teachers(models, tmp_path):
    from tests.conftest import write_task

    task = str(write_task(tmp_path / "task", n_lab=9, n_unl=12, n_test=6, size=12))
    entries = [{"name": name, "kind": "hf", "modality": "image", "path": str(models / name),
                "domain": "random weights"} for name in ("vit-classifier", "convnext", "clip-vision")]
    zoo, cache = str(_write_zoo(tmp_path, entries)), str(tmp_path / "cache")

    _cli("rank", "--task", task, "--zoo", zoo, "--cache", cache, "--out", str(tmp_path / "rank.json"))
    ranking = {t["name"]: t for t in json.loads((tmp_path / "rank.json").read_text())["teachers"]}
    assert set(ranking) == {"vit-classifier", "convnext", "clip-vision"}
    assert sorted(t["rank"] for t in ranking.values()) == [1, 2, 3]
    assert all(np.isfinite(t["scores"]["logme"]) for t in ranking.values())
    assert ranking["vit-classifier"]["scores"]["leep"] is not None  # logits over its own labels
    assert ranking["convnext"]["scores"]["leep"] is None

    # weighted over the whole zoo, then nearest with each backbone alone.
    runs = {"weighted": zoo, "nearest-convnext": str(_write_zoo(tmp_path / "convnext", entries[1:2])),
            "nearest-clip-vision": str(_write_zoo(tmp_path / "clip-vision", entries[2:]))}
    for run, run_zoo in runs.items():
        out = tmp_path / "runs" / run
        _cli("distill", "--task", task, "--zoo", run_zoo, "--cache", cache, "--method", run.split("-")[0],
             "--out", str(out), "epochs=1", "progress=false", "batch_size=4")
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0 <= metrics["test"]["accuracy"] <= 1 and (out / "student.safetensors").is_file()
        assert sorted(metrics["teachers"]["teachers"]) == sorted(load_zoo(run_zoo).names)
