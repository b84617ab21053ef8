"""A language-modeling task: a folder with ``task.yaml`` and a ``train`` and a ``test`` text.

    kind: language-modeling
    name: idle-code
    splits:
      train: train.txt          # .txt: the whole file is one document
      test: test.jsonl          # .jsonl: one document a line, {"text": ...} (optionally "domain": ...)

Both splits are read as UTF-8 and checked before any work: a missing file, bytes that are not
UTF-8, a JSONL line without a string ``text``, or a split without any text is an error naming
the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from xdistill.config import load_task_yaml
from xdistill.errors import XDistillError, join_problems

KIND = "language-modeling"
SPLITS = ("train", "test")
SUFFIXES = (".txt", ".jsonl")


@dataclass
class TextSplit:
    """One split: its documents, their UTF-8 size and a fingerprint of the text."""

    name: str
    documents: list[str]
    fingerprint: str
    path: Path | None = None
    domains: list[str] | None = None  # each document's domain (the optional JSONL field 'domain')

    @property
    def n_bytes(self) -> int:
        return sum(len(d.encode("utf-8")) for d in self.documents)

    @property
    def x(self) -> list[str]:  # what generic code reads as a split's samples
        return self.documents

    def __len__(self) -> int:
        return len(self.documents)


@dataclass
class LMTask:
    name: str
    splits: dict[str, TextSplit]
    folder: Path | None = None
    kind: str = KIND
    modality: str = "text"  # what its teachers read
    extra: dict = field(default_factory=dict)


def text_fingerprint(documents: list[str]) -> str:
    digest = hashlib.sha256()
    for document in documents:
        data = document.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return "text-" + digest.hexdigest()[:32]


def make_split(name: str, documents: list[str], path: Path | None = None,
               domains: list[str] | None = None) -> TextSplit:
    return TextSplit(name, list(documents), text_fingerprint(documents), path, domains)


def read_documents(path: Path) -> tuple[list[str], list[str]]:
    """(documents, problems) of one split file; see :func:`read_split` for the documents' domains too."""
    documents, _, problems = read_split(path)
    return documents, problems


def read_split(path: Path) -> tuple[list[str], list[str] | None, list[str]]:
    """(documents, their domains or None, problems) of one split file."""
    if not path.is_file():
        return [], None, [f"'{path}' does not exist. Write the split as a UTF-8 .txt or .jsonl file and name it in task.yaml."]
    if path.suffix not in SUFFIXES:
        return [], None, [f"'{path}' must be a .txt (one document) or .jsonl (one {{\"text\": ...}} a line) file. "
                    f"Got suffix {path.suffix!r}."]
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], None, [f"'{path}' is not UTF-8 (byte {exc.start}: {exc.reason}). Convert it with "
                    f"`iconv -t UTF-8` or save it as UTF-8."]
    if path.suffix == ".txt":
        return (([text] if text.strip() else []), None,
                ([] if text.strip() else [f"'{path}' holds no text. Give each split some text."]))
    documents, domains, problems = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"'{path}' line {number} is not JSON ({exc.msg}). Write one {{\"text\": ...}} object a line.")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            problems.append(f"'{path}' line {number} has no string field 'text'. Write one {{\"text\": ...}} object a line.")
            continue
        domain = record.get("domain", "")
        if not isinstance(domain, str):
            problems.append(f"'{path}' line {number}: 'domain' must be a string. Got {domain!r}.")
            continue
        if record["text"]:
            documents.append(record["text"])
            domains.append(domain)
        if len(problems) >= 5:
            break
    if not documents and not problems:
        problems.append(f"'{path}' holds no text. Give each split some text.")
    return documents, (domains if any(domains) else None), problems


def load_lm_task(folder: Path) -> LMTask:
    """Read and check a language-modeling task folder, reporting every problem at once."""
    path, raw = load_task_yaml(folder, "'kind', 'name' and 'splits'")
    folder = path.parent
    problems = [f"Unknown key '{k}' for kind {KIND}. Valid keys: kind, name, splits." for k in raw
                if k not in ("kind", "name", "splits")]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"'name' must be a non-empty string. Got {name!r}.")
    splits_raw = raw.get("splits")
    if not isinstance(splits_raw, dict):
        problems.append("'splits' must map train and test to their files, e.g. {train: train.txt, test: test.txt}.")
        splits_raw = {}
    problems += [f"'splits' has unknown split '{k}'. Valid splits: {', '.join(SPLITS)}." for k in splits_raw if k not in SPLITS]
    splits = {}
    for split in SPLITS:
        value = splits_raw.get(split)
        if not isinstance(value, str) or not value:
            if isinstance(raw.get("splits"), dict):
                problems.append(f"'splits' has no '{split}' file. Name a .txt or .jsonl file for it.")
            continue
        documents, domains, found = read_split(folder / value)
        problems += [f"split '{split}': {p}" for p in found]
        if not found:
            splits[split] = make_split(split, documents, folder / value, domains)
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task '{path}'"))
    return LMTask(str(name), splits, folder)


def task_from_texts(name: str, train: list[str], test: list[str]) -> LMTask:
    """A task from in-memory documents."""
    return LMTask(name, {"train": make_split("train", train), "test": make_split("test", test)})


def write_lm_task(folder: Path, name: str, train: list[str], test: list[str],
                  train_domains: list[str] | None = None) -> Path:
    """Write a task folder (each split a .jsonl of its documents; the train documents' domains when given)."""
    from xdistill.io import atomic_write_text

    folder = Path(folder)
    for split, documents in (("train", train), ("test", test)):
        domains = train_domains if split == "train" and train_domains else [None] * len(documents)
        atomic_write_text(folder / f"{split}.jsonl", "".join(
            json.dumps({"text": d} if domain is None else {"text": d, "domain": domain}) + "\n"
            for d, domain in zip(documents, domains)))
    atomic_write_text(folder / "task.yaml", f"kind: {KIND}\nname: {name}\nsplits:\n  train: train.jsonl\n  test: test.jsonl\n")
    return folder
