"""The shared protocol layer (phonft.protocols): digests, and from_dict as the one decoder."""

from __future__ import annotations

import pytest

from phonft.errors import ConfigError
from phonft.protocols import ReferenceProtocol


def test_protocol_digest_changes_with_settings():
    assert ReferenceProtocol().digest() != ReferenceProtocol(mesh=(10, 10, 10)).digest()
    assert ReferenceProtocol().digest() == ReferenceProtocol().digest()


def test_protocol_from_dict_is_the_one_decoder():
    from phonft.finetune.settings import REPLAY_WEIGHTS, TrainSettings
    from phonft.protocols import ReferenceProtocol

    p = ReferenceProtocol.from_dict({"temperatures_K": [0, 300], "mesh": 100})
    assert p.temperatures_K == (0.0, 300.0) and isinstance(p.temperatures_K[0], float) and p.mesh == 100.0
    assert p.digest() == ReferenceProtocol(temperatures_K=(0.0, 300.0)).digest()
    assert ReferenceProtocol.from_dict({"mesh": [20, 20, 20]}).mesh == (20, 20, 20)
    t = TrainSettings.from_dict({"replay_weights": {"stress": 1}, "phonon_weights": None,
                                 "model_options": {"seed": 1, "elements": ["Si", "O"]}})
    assert t.replay_weights.stress == 1.0 and t.replay_weights.forces == REPLAY_WEIGHTS.forces
    assert t.phonon_weights == TrainSettings().phonon_weights
    assert t.model_options == (("elements", ("Si", "O")), ("seed", 1)) and t.options["seed"] == 1
    with pytest.raises(ConfigError, match=r"references: unknown setting 'nac'; known: .*use_nac"):
        ReferenceProtocol.from_dict({"nac": True})
