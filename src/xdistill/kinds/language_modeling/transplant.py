"""Tokenizer transplantation by orthogonal matching pursuit (``transplant=true``), after Goddard and Neto 2025,
"Training-free tokenizer transplantation via orthogonal matching pursuit".

A teacher is given the student's tokenizer without training: every token the two vocabularies spell alike
keeps the teacher's embedding; every other student token gets a sparse combination of the teacher's embeddings
of shared tokens. The combination is found where both kinds of token already live, in the embedding space of a
*donor* model that has the student's tokenizer (the generic student of ``init=``): orthogonal matching pursuit
picks ``transplant_atoms`` shared tokens whose donor embeddings best rebuild the new token's donor embedding,
with least-squares coefficients, and the same coefficients combine the teacher's embeddings of those tokens
(the teacher ties its output projection to its embedding, so both change together). The transplanted teacher
is then cached and distilled like any teacher that shares the student's tokenizer.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.kinds.language_modeling.alignment import shared_vocabulary
from xdistill.models.gpt import GPT, GPTConfig


def omp(targets: torch.Tensor, atoms: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal matching pursuit, batched: targets [M, d], atoms [S, d] -> (indices [M, n], coefficients [M, n])
    with targets ~= coefficients @ atoms[indices] row by row. Each round adds the atom most correlated with the
    residual (atoms compared by direction) and refits every coefficient chosen so far by least squares."""
    targets, atoms = targets.double(), atoms.double()
    n_atoms = min(n_atoms, atoms.shape[0])
    unit = atoms / atoms.norm(dim=1, keepdim=True).clamp(min=1e-12)
    residual = targets.clone()
    chosen = torch.zeros((targets.shape[0], 0), dtype=torch.long)
    coefficients = torch.zeros((targets.shape[0], 0), dtype=torch.float64)
    taken = torch.zeros((targets.shape[0], atoms.shape[0]), dtype=torch.bool)
    for _ in range(n_atoms):
        scores = (residual @ unit.t()).abs().masked_fill(taken, -1.0)
        best = scores.argmax(dim=1)
        taken[torch.arange(len(best)), best] = True
        chosen = torch.cat([chosen, best[:, None]], dim=1)
        basis = atoms[chosen].transpose(1, 2)  # [M, d, j]
        coefficients = torch.linalg.lstsq(basis, targets[:, :, None]).solution.squeeze(2)
        residual = targets - (basis @ coefficients[:, :, None]).squeeze(2)
    return chosen, coefficients


def transplant_embeddings(teacher_embedding: torch.Tensor, donor_embedding: torch.Tensor, mapping: np.ndarray,
                          n_atoms: int) -> torch.Tensor:
    """The teacher's embedding matrix for the student's vocabulary [V_student, d_teacher].

    teacher_embedding [V_teacher, d_teacher], donor_embedding [V_student, d_donor] (a model with the student's
    tokenizer), mapping [V_teacher] the student id of each teacher id or -1 (``shared_vocabulary``)."""
    teacher_ids = np.flatnonzero(mapping >= 0)
    student_ids = mapping[teacher_ids]
    if len(student_ids) == 0:
        raise XDistillError("The teacher's and the student's vocabularies spell no token alike, so no embedding "
                            "can be transplanted. Distil across tokenizers instead (transplant=false).")
    out = torch.empty((donor_embedding.shape[0], teacher_embedding.shape[1]), dtype=torch.float64)
    shared_teacher = teacher_embedding[torch.from_numpy(teacher_ids)].double()
    out[torch.from_numpy(student_ids)] = shared_teacher
    new = np.setdiff1d(np.arange(donor_embedding.shape[0]), student_ids)
    if len(new):
        index, coefficients = omp(donor_embedding[torch.from_numpy(new)], donor_embedding[torch.from_numpy(student_ids)],
                                  n_atoms)
        out[torch.from_numpy(new)] = (coefficients[:, :, None] * shared_teacher[index]).sum(dim=1)
    return out.to(teacher_embedding.dtype)


class TransplantedTeacher:
    """A ``gpt`` teacher given the student's tokenizer (see the module docstring); what the top-k cache reads."""

    language_model = True

    def __init__(self, teacher, tokenizer, donor: GPT, n_atoms: int) -> None:
        self.teacher, self.tokenizer, self.donor, self.n_atoms = teacher, tokenizer, donor, n_atoms
        self.name = teacher.name
        self.domain = getattr(teacher, "domain", "")
        self.spec = teacher.spec
        self.context = teacher.context
        self.vocab_size = tokenizer.vocab_size
        self.model: GPT | None = None
        self.mapping = shared_vocabulary(teacher.tokenizer, tokenizer)
        if teacher.tokenizer.bos_id is not None and tokenizer.bos_id is not None:
            self.mapping[teacher.tokenizer.bos_id] = tokenizer.bos_id
        self.shared_tokens = int((self.mapping >= 0).sum())  # known before setup, so a cached teacher reports it too

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.donor.token_embedding.weight.detach().float().numpy().tobytes())
        return (f"{self.teacher.fingerprint()}|transplant|{self.tokenizer.identity}|omp{self.n_atoms}|"
                f"{digest.hexdigest()[:16]}")

    def setup(self) -> None:
        if self.model is not None:
            return
        self.teacher.setup()
        source = getattr(self.teacher, "model", None)
        if not isinstance(source, GPT) or not source.config.tie:
            raise XDistillError(f"Teacher '{self.name}' cannot be transplanted: transplant=true needs a 'kind: gpt' "
                                "teacher whose output projection is its token embedding.")
        mapping = self.mapping
        config = GPTConfig(**{**source.config.__dict__, "vocab_size": self.tokenizer.vocab_size})
        model = GPT(config)
        state = {k: v for k, v in source.state_dict().items() if k != "token_embedding.weight"}
        with torch.no_grad():
            embedding = transplant_embeddings(source.token_embedding.weight, self.donor.token_embedding.weight,
                                              mapping, self.n_atoms)
        model.load_state_dict({**state, "token_embedding.weight": embedding})
        self.model = model.eval()

    @torch.inference_mode()
    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.setup()
        return self.model.token_logits(ids).float()
