"""A generation network on disk: xdistill's own denoiser folder (a ``unet`` and its config), written for
teachers and for run folders alike.

    <folder>/config.json         {"format": "xdistill-denoiser-1", "family": "unet", "input_shape": [C, H, W],
                                  "num_classes": K, "knobs": {...}, "classes": [...], "guidance": w, "steps": k}
    <folder>/model.safetensors   the weights
"""

from __future__ import annotations

import json
from pathlib import Path

from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_json, load_weights, read_safetensors

FORMAT = "xdistill-denoiser-1"
CONFIG, WEIGHTS = "config.json", "model.safetensors"
ROUTED = "class-routed"  # the family of a generator of several members, each owning some classes


def save_denoiser(folder: Path, network, classes: list[str], extra: dict | None = None) -> Path:
    """Write ``network`` (a ``unet``) and its config to ``folder``; ``extra`` keys join the config
    (the sampling defaults ``guidance`` and ``steps``). A class-routed generator is written as its config
    (family ``class-routed``: each member's sub-folder and owned classes) and one denoiser folder per member,
    ``members/<i>/``."""
    from safetensors.torch import save_file

    from xdistill.models.class_routed import ClassRouted

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(network, ClassRouted):
        members = []
        for index, (member, owned) in enumerate(zip(network.members, network.owned)):
            save_denoiser(folder / "members" / str(index), member, classes, {**(extra or {}), "owns": owned})
            members.append({"folder": f"members/{index}", "classes": owned})
        atomic_write_json(folder / CONFIG, {"format": FORMAT, "family": ROUTED, "input_shape": list(network.input_shape),
                                            "num_classes": network.num_classes, "members": members,
                                            "classes": list(classes), **(extra or {})})
        return folder
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    atomic_write_json(folder / CONFIG, {"format": FORMAT, "family": "unet", "input_shape": list(network.input_shape),
                                        "num_classes": network.num_classes, "knobs": network.config,
                                        "classes": list(classes), **(extra or {})})
    return folder


def is_denoiser_folder(folder: Path) -> bool:
    path = Path(folder) / CONFIG
    if not path.is_file():
        return False
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        return False
    if config.get("family") == ROUTED:
        return all(is_denoiser_folder(Path(folder) / str(m.get("folder", ""))) for m in config.get("members", []))
    return (Path(folder) / WEIGHTS).is_file()


def read_denoiser_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise XDistillError(f"'{path}' cannot be read as JSON ({exc}). Rewrite the folder with xdistill.") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise XDistillError(f"'{path}' is not an xdistill denoiser config (format {FORMAT!r}).")
    return config


def load_denoiser(folder: Path):
    """(network in eval mode, config) of a denoiser folder."""
    from xdistill.students import build_student

    config = read_denoiser_config(folder)
    if config.get("family") == ROUTED:
        from xdistill.models.class_routed import ClassRouted

        members = [load_denoiser(Path(folder) / m["folder"])[0] for m in config["members"]]
        return ClassRouted(members, [m["classes"] for m in config["members"]]).eval().requires_grad_(False), config
    knobs = dict(config["knobs"])
    knobs["mults"] = tuple(knobs.get("mults", (1, 2, 4)))
    network = build_student(config.get("family", "unet"), tuple(config["input_shape"]), int(config["num_classes"]),
                            **knobs)
    state = read_safetensors(Path(folder) / WEIGHTS, "Denoiser weights")
    load_weights(network, state, f"The weights in '{folder}'", "its config.json")
    return network.eval().requires_grad_(False), config
