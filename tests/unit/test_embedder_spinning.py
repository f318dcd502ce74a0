"""The embedder's ORT sessions never spin while idle (encoder.py module doc)."""

from primflow.engines.embedder.encoder import spinning_config


def test_multi_thread_sessions_spin_only_within_a_run() -> None:
    config = spinning_config(2)
    assert config["session.intra_op.allow_spinning"] == "1"
    assert config["session.force_spinning_stop"] == "1"  # stop when the run ends
    assert config["session.inter_op.allow_spinning"] == "0"


def test_one_thread_sessions_never_spin() -> None:
    config = spinning_config(1)
    assert config["session.intra_op.allow_spinning"] == "0"
    assert config["session.inter_op.allow_spinning"] == "0"
