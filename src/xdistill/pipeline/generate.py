"""``xdistill generate``: samples from a run folder or a teacher folder, by its kind."""

from __future__ import annotations

from pathlib import Path

from xdistill.errors import XDistillError
from xdistill.kinds import KINDS
from xdistill.pipeline.evaluate import folder_kind, run_kind

LM_FOLDER_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def source_kind(source: Path) -> str:
    """The kind of a run folder (its student.json), of a gpt teacher folder, or of a pretrained LM file."""
    if source.is_file() and source.suffix == ".safetensors":
        return "language-modeling"
    if not source.is_dir():
        raise XDistillError(f"'{source}' does not exist. Give a run folder (the --out of distill), a teacher folder "
                            "or a pretrained .safetensors file.")
    if (source / "student.json").is_file() or (source / "metrics.json").is_file():
        return run_kind(source)
    if all((source / name).is_file() for name in LM_FOLDER_FILES):
        return "language-modeling"
    owner = folder_kind(source)
    if owner is not None:
        return owner
    raise XDistillError(f"'{source}' is neither a run folder nor a teacher folder xdistill can generate from.")


def generate(source: str | Path, **options) -> list[dict]:
    source = Path(source)
    name = source_kind(source)
    kind = KINDS.get(name)
    if kind.generate is None:
        raise XDistillError(f"'{source}' is a {name} run; generation is for generative kinds "
                            f"({', '.join(n for n, k in KINDS.items() if k.generate is not None)}).")
    return kind.generate(source, **options)
