import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The machine is shared: small ops are fastest on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _tiny_base(steps: int = 12) -> dict:
    return {
        "task": {"name": "teacher_student", "input_dim": 3, "teacher_width": 2},
        "model": {"name": "mlp", "hidden": 8, "g": 1.0},
        "optimizer": "adam", "lr": 1e-2, "steps": steps, "probes": ["metrics", "rel_change"],
    }


@pytest.fixture
def tiny_base():
    """A factory of small, fast configs: tiny_base(steps=12)."""
    return _tiny_base
