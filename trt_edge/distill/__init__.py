"""Knowledge distillation: a teacher's soft labels train a smaller student."""
