"""Framework callbacks: :mod:`oomguard.integrations.hf` (Hugging Face
``Trainer``) and :mod:`oomguard.integrations.lightning` (Lightning ``Trainer``).

Each module imports its framework when it is imported itself, never before.
"""
