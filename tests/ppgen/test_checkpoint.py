"""Model checkpoints: exact round trips, and a clear refusal of every bad file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from testkit import TinyGaussian, randomize

from ppgen.checkpoint import load_model, read_checkpoint, save_model
from ppgen.errors import CheckpointError

__all__: list[str] = []


class Exploit:
    """Pickles as a call of ``os.system``: loading it unsafely would create ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[TinyGaussian, Path]:
    model = randomize(TinyGaussian(dim=4, label="four"), seed=1)
    path = tmp_path / "model.pt"
    save_model(model, path, extra={"likelihood": "continuous", "event_shape": [4]})
    return model, path


# --------------------------------------------------------------------------- round trips
def test_round_trip_is_exact(saved):
    model, path = saved
    loaded = load_model(path)
    assert type(loaded) is TinyGaussian and not loaded.training
    assert loaded.get_config() == model.get_config() == {"dim": 4, "label": "four"}
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.sample(5).shape == (5, 4)


def test_file_contents_and_no_temporary_left(saved):
    _, path = saved
    raw = read_checkpoint(path)
    assert (raw["format"], raw["version"], raw["model"]) == (
        "ppgen-model",
        1,
        "tiny-gaussian",
    )
    assert raw["extra"] == {"likelihood": "continuous", "event_shape": [4]}
    assert raw["config"] == {"dim": 4, "label": "four"}
    assert isinstance(torch.load(path, weights_only=True)["config"], str)  # JSON text on disk
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_model_save_uses_the_checkpoint_module(tmp_path):
    model = randomize(TinyGaussian(), seed=2)
    model.save(str(tmp_path / "m.pt"))
    assert torch.equal(load_model(tmp_path / "m.pt").loc, model.loc)


def test_extra_must_be_json(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_model(TinyGaussian(), tmp_path / "m.pt", extra={"x": object()})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"hello world\n", bytes(range(256)) * 8])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_model(path)


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(TinyGaussian().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a ppgen model checkpoint.*model.save"):
        load_model(path)


def rewrite(path: Path, **changes: Any) -> None:
    """Re-save the checkpoint at ``path`` with some entries changed."""
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **changes}, path)


def test_unknown_model_name(saved):
    _, path = saved
    rewrite(path, model="no-such-model-anywhere")
    with pytest.raises(CheckpointError, match="no-such-model-anywhere.*[Ii]mport the module"):
        load_model(path)


def test_state_dict_mismatch(saved):
    _, path = saved
    rewrite(path, config=json.dumps({"dim": 5, "label": "five"}))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_bad_config_and_newer_version(saved):
    _, path = saved
    rewrite(path, config=json.dumps({"width": 5}))
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_model(path)
    rewrite(path, version=99)
    with pytest.raises(CheckpointError, match="upgrade"):
        load_model(path)


# --------------------------------------------------------------------------- unsafe pickles
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, protocol):
    pwned = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Exploit(pwned), protocol=protocol))
    assert b"system" in path.read_bytes()
    with pytest.raises(CheckpointError, match="nothing in it was executed"):
        load_model(path)
    assert not pwned.exists()


def test_malicious_object_inside_a_torch_zip_is_refused(tmp_path):
    pwned = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "ppgen-model", "version": 1, "payload": Exploit(pwned)}, path)
    with pytest.raises(CheckpointError, match="code or objects.*refused"):
        load_model(path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not pwned.exists()
