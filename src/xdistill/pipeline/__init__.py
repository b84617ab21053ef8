"""End-to-end runs composed from the stages: rank, distill, evaluate, report."""
