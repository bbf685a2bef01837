"""Runs: the layer between training and the studies (the teacher bank; the run cache joins it)."""

from .bank import BankTeacher, bank_root, bank_teacher

__all__ = ["BankTeacher", "bank_root", "bank_teacher"]
