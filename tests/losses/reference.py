"""Independent reference values for the losses, written from the papers'
formulas as literally as possible: explicit loops over samples, classes,
pairs and triplets, with math.log / math.exp in float64. Nothing here shares
code or numerical tricks with xdistill.losses, so agreement means something.

Every function takes plain nested lists / numpy arrays and returns a dict of
floats with the same keys as the xdistill loss.
"""

from __future__ import annotations

import math

import numpy as np


def softmax(values):
    largest = max(values)
    exps = [math.exp(v - largest) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def kl(p, q):
    """KL(p || q) = sum_i p_i log(p_i / q_i)."""
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def entropy(p):
    return -sum(pi * math.log(pi) for pi in p if pi > 0)


def retempered_teacher(probs, temperature):
    """softmax(log p / T): the teacher's probabilities at temperature T."""
    return softmax([math.log(p) / temperature for p in probs])


def tempered_student(logits, temperature):
    return softmax([z / temperature for z in logits])


def batch_mean(per_sample, weight=None):
    """sum_n w_n * l_n / N (normalised by N, whatever the weights)."""
    if weight is None:
        weight = [1.0] * len(per_sample)
    return sum(w * l for w, l in zip(weight, per_sample)) / len(per_sample)


def huber(x):
    """smooth L1 / Huber with delta = 1."""
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def kd(student_logits, teacher_probs, temperature, weight=None):
    per_sample = []
    for z, p in zip(student_logits, teacher_probs):
        p_t, q_t = retempered_teacher(p, temperature), tempered_student(z, temperature)
        per_sample.append(temperature**2 * kl(p_t, q_t))
    return {"loss": batch_mean(per_sample, weight)}


def reverse_kl(student_logits, teacher_probs, temperature, weight=None):
    per_sample = []
    for z, p in zip(student_logits, teacher_probs):
        p_t, q_t = retempered_teacher(p, temperature), tempered_student(z, temperature)
        per_sample.append(temperature**2 * kl(q_t, p_t))
    return {"loss": batch_mean(per_sample, weight)}


def js(student_logits, teacher_probs, temperature, weight=None):
    per_sample = []
    for z, p in zip(student_logits, teacher_probs):
        p_t, q_t = retempered_teacher(p, temperature), tempered_student(z, temperature)
        m = [(a + b) / 2 for a, b in zip(p_t, q_t)]
        per_sample.append(temperature**2 * (kl(p_t, m) / 2 + kl(q_t, m) / 2))
    return {"loss": batch_mean(per_sample, weight)}


def bdkd(student_logits, teacher_probs, temperature, weight=None):
    forward, reverse = [], []
    for z, p in zip(student_logits, teacher_probs):
        p_t, q_t = retempered_teacher(p, temperature), tempered_student(z, temperature)
        h_student, h_teacher = entropy(q_t), entropy(p_t)
        w_reverse = h_student / (h_student + h_teacher)
        w_forward = h_teacher / (h_student + h_teacher)
        forward.append(temperature**2 * w_forward * kl(p_t, q_t))
        reverse.append(temperature**2 * w_reverse * kl(q_t, p_t))
    forward_kl, reverse_kl_ = batch_mean(forward, weight), batch_mean(reverse, weight)
    return {"loss": forward_kl + reverse_kl_, "forward_kl": forward_kl, "reverse_kl": reverse_kl_}


def dkd_parts(z, p, label, temperature):
    """(TCKD, NCKD) of one sample, Zhao et al. 2022 Eq. 1-7, without T^2."""
    p_t, q_t = retempered_teacher(p, temperature), tempered_student(z, temperature)
    b_teacher = [p_t[label], 1 - p_t[label]]
    b_student = [q_t[label], 1 - q_t[label]]
    others = [c for c in range(len(z)) if c != label]
    hat_teacher = [p_t[c] / (1 - p_t[label]) for c in others]
    hat_student = [q_t[c] / (1 - q_t[label]) for c in others]
    return kl(b_teacher, b_student), kl(hat_teacher, hat_student)


def dkd(student_logits, teacher_probs, labels, alpha, beta, temperature, weight=None):
    tckd, nckd = [], []
    for z, p, label in zip(student_logits, teacher_probs, labels):
        target_part, non_target_part = dkd_parts(z, p, int(label), temperature)
        tckd.append(temperature**2 * alpha * target_part)
        nckd.append(temperature**2 * beta * non_target_part)
    tckd_term, nckd_term = batch_mean(tckd, weight), batch_mean(nckd, weight)
    return {"loss": tckd_term + nckd_term, "tckd": tckd_term, "nckd": nckd_term}


def taid(student_logits, teacher_probs, t, temperature, weight=None):
    per_sample = []
    for z, p in zip(student_logits, teacher_probs):
        target = softmax([((1 - t) * zc + t * math.log(pc)) / temperature for zc, pc in zip(z, p)])
        per_sample.append(temperature**2 * kl(target, tempered_student(z, temperature)))
    return {"loss": batch_mean(per_sample, weight)}


def ce(student_logits, labels, weight=None):
    per_sample = [-math.log(softmax(z)[int(label)]) for z, label in zip(student_logits, labels)]
    return {"loss": batch_mean(per_sample, weight)}


def soft_ce(student_logits, target_probs, weight=None):
    per_sample = []
    for z, p in zip(student_logits, target_probs):
        q = softmax(z)
        per_sample.append(-sum(pc * math.log(qc) for pc, qc in zip(p, q)))
    return {"loss": batch_mean(per_sample, weight)}


def linear_map(weight_matrix, bias, x):
    return [sum(w * xi for w, xi in zip(row, x)) + b for row, b in zip(weight_matrix, bias)]


def feature_mse(student_features, teacher_features, projector_weight, projector_bias, weight=None):
    per_sample = []
    for s, t in zip(student_features, teacher_features):
        projected = linear_map(projector_weight, projector_bias, s)
        per_sample.append(sum((a - b) ** 2 for a, b in zip(projected, t)) / len(t))
    return {"loss": batch_mean(per_sample, weight)}


def feature_cosine(student_features, teacher_features, projector_weight, projector_bias, weight=None):
    per_sample = []
    for s, t in zip(student_features, teacher_features):
        a = linear_map(projector_weight, projector_bias, s)
        dot = sum(ai * ti for ai, ti in zip(a, t))
        norms = math.sqrt(sum(ai * ai for ai in a)) * math.sqrt(sum(ti * ti for ti in t))
        per_sample.append(1 - dot / norms)
    return {"loss": batch_mean(per_sample, weight)}


def rkd_relations(x):
    """Park et al. 2019: normalised distances over ordered pairs i != j (Eq. 4)
    and angle cosines at x_j over ordered distinct triplets (Eq. 6)."""
    n = len(x)

    def difference(i, j):
        return [a - b for a, b in zip(x[i], x[j])]

    def norm(v):
        return math.sqrt(sum(c * c for c in v))

    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    distances = {(i, j): norm(difference(i, j)) for i, j in pairs}
    mu = sum(distances.values()) / len(pairs)
    psi_distance = [distances[pair] / mu for pair in pairs]

    psi_angle = []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if len({i, j, k}) < 3:
                    continue
                e_ij = [c / distances[(i, j)] for c in difference(i, j)]
                e_kj = [c / distances[(k, j)] for c in difference(k, j)]
                psi_angle.append(sum(a * b for a, b in zip(e_ij, e_kj)))
    return psi_distance, psi_angle


def rkd(student_features, teacher_features, distance_weight, angle_weight):
    student_distance, student_angle = rkd_relations(student_features)
    teacher_distance, teacher_angle = rkd_relations(teacher_features)
    distance = sum(huber(s - t) for s, t in zip(student_distance, teacher_distance)) / len(student_distance)
    angle = sum(huber(s - t) for s, t in zip(student_angle, teacher_angle)) / len(student_angle)
    return {
        "loss": distance_weight * distance + angle_weight * angle,
        "distance": distance_weight * distance,
        "angle": angle_weight * angle,
    }


def linear_cka(x, y):
    """Kornblith et al. 2019, Eq. 5, in its feature-space form."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


def cka(student_features, teacher_features):
    return {"loss": 1 - linear_cka(student_features, teacher_features)}


def sinkhorn_distance(student_rows, teacher_rows, epsilon, iterations, mass):
    """Cuturi 2013, Algorithm 1 as written: K = exp(-C / eps), then u = a / (K v), v = b / (K^T u) from v = 1,
    the plan P = diag(u) K diag(v) and the cost <P, C>, with C the L1 distance between rows."""
    n = len(student_rows)
    cost = [[sum(abs(a - b) for a, b in zip(student_rows[i], teacher_rows[j])) for j in range(n)] for i in range(n)]
    kernel = [[math.exp(-cost[i][j] / epsilon) for j in range(n)] for i in range(n)]
    u, v = [1.0] * n, [1.0] * n
    for _ in range(iterations):
        u = [mass[i] / sum(kernel[i][j] * v[j] for j in range(n)) for i in range(n)]
        v = [mass[j] / sum(kernel[i][j] * u[i] for i in range(n)) for j in range(n)]
    return sum(u[i] * kernel[i][j] * v[j] * cost[i][j] for i in range(n) for j in range(n))


def batch_sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations, weight):
    """SinKD (Cui et al. 2024): the Sinkhorn distance between the batch's student and teacher distributions at
    temperature T, each sample of mass w_n / sum(w) (1/N without weights), scaled by mean(w)."""
    students = [tempered_student(z, temperature) for z in student_logits]
    teachers = [retempered_teacher(p, temperature) for p in teacher_probs]
    n = len(students)
    weight = [1.0] * n if weight is None else list(weight)
    mass = [w / sum(weight) for w in weight]
    return sum(weight) / n * sinkhorn_distance(students, teachers, epsilon, iterations, mass)


def sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations=30, weight=None):
    return {"loss": batch_sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations, weight)}


def sinkd(student_logits, teacher_probs, temperature, epsilon, sinkhorn_weight, iterations=30, weight=None):
    kd_term = kd(student_logits, teacher_probs, temperature, weight)["loss"]
    ot = sinkhorn_weight * batch_sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations, weight)
    return {"loss": kd_term + ot, "kd": kd_term, "sinkhorn": ot}


def nd(student_features, teacher_features, projector_weight, projector_bias, labels, teacher_class_means,
       weight=None):
    """Wang et al. 2023, the ND loss: 1 - <f_s, mu_y / ||mu_y||> / max(||f_s||, ||f_t||) per sample."""
    per_sample = []
    for s, t, label in zip(student_features, teacher_features, labels):
        f = linear_map(projector_weight, projector_bias, s)
        mean = teacher_class_means[int(label)]
        mean_norm = math.sqrt(sum(m * m for m in mean))
        along = sum(fi * m / mean_norm for fi, m in zip(f, mean))
        longer = max(math.sqrt(sum(fi * fi for fi in f)), math.sqrt(sum(ti * ti for ti in t)))
        per_sample.append(1 - along / longer)
    return {"loss": batch_mean(per_sample, weight)}


def ofa(student_logits, teacher_probs, labels, exit_logits, gamma, weight=None):
    """Hao et al. 2023, eq. 5: -sum_c [(p_c + [c = y])^gamma - [c = y]] log q_c, summed over the final
    head and every exit, each a batch mean."""
    def one(logits):
        per_sample = []
        for z, p, label in zip(logits, teacher_probs, labels):
            q = softmax(z)
            per_sample.append(-sum(((pc + (c == int(label))) ** gamma - (c == int(label))) * math.log(qc)
                                   for c, (pc, qc) in enumerate(zip(p, q))))
        return batch_mean(per_sample, weight)

    final = one(student_logits)
    exits = sum(one(e) for e in exit_logits)
    return {"loss": final + exits, "final": final, "exits": exits}


REFERENCES = {
    "kd": kd,
    "reverse_kl": reverse_kl,
    "js": js,
    "bdkd": bdkd,
    "dkd": dkd,
    "taid": taid,
    "ce": ce,
    "soft_ce": soft_ce,
    "feature_mse": feature_mse,
    "feature_cosine": feature_cosine,
    "rkd": rkd,
    "cka": cka,
    "sinkhorn": sinkhorn,
    "sinkd": sinkd,
    "nd": nd,
    "ofa": ofa,
}
