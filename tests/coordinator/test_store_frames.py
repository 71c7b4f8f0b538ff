"""Wire messages to store records: the agent's frame bytes are kept as sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novacron.coordinator.ingest_checks import FrameChecker, KnownSchemas, StreamRejected
from novacron.coordinator.store_frames import frame_payloads, stored_frame
from novacron.models.schema import VM
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame

CHECKS = FrameChecker(KnownSchemas.current())


def batch_message(frames: list[telemetry_pb2.Frame]) -> bytes:
    batch = telemetry_pb2.FrameBatch(frames=frames)
    return telemetry_pb2.AgentMessage(frames=batch).SerializeToString()


def test_payloads_are_the_frames_bytes_sliced_out_of_the_message() -> None:
    frames = [make_frame("hv-1", seq, vms=seq % 4) for seq in range(1, 8)]
    payloads = frame_payloads(batch_message(frames))
    assert payloads == [f.SerializeToString() for f in frames]
    assert frame_payloads(batch_message([])) == []


def test_a_frame_field_of_a_newer_agent_stays_in_the_payload() -> None:
    unknown = b"\xba\x3e\x03abc"  # field 999, length-delimited: unknown to this build
    body = make_frame("hv-1", 1).SerializeToString() + unknown
    raw = batch_message([telemetry_pb2.Frame.FromString(body)])  # kept as unknown field
    message = telemetry_pb2.AgentMessage.FromString(raw)
    [payload] = frame_payloads(raw) or []
    assert payload == body
    record = stored_frame("hv-1", message.frames.frames[0], payload, checks=CHECKS)
    assert record.payload.endswith(unknown)


@given(st.binary(max_size=64))
def test_bytes_of_another_shape_give_none_or_what_was_there(raw: bytes) -> None:
    # Never an exception: the ingest parsed the message already and falls back to
    # serializing when the walk does not fit.
    payloads = frame_payloads(raw)
    assert payloads is None or all(isinstance(p, bytes) for p in payloads)


def test_checked_conversion_refuses_what_check_frame_refuses() -> None:
    good = make_frame("hv-1", 2)
    record = stored_frame("hv-1", good, good.SerializeToString(), checks=CHECKS)
    assert (record.node_id, record.seq, record.vm_count) == ("hv-1", 2, 10)
    assert record.predictions[0].probability == pytest.approx(0.02)

    bad = make_frame("hv-1", 3)
    bad.vm_features[4].features.values.append(1.0)
    with pytest.raises(StreamRejected, match=f"has {len(VM.features)}"):
        stored_frame("hv-1", bad, bad.SerializeToString(), checks=CHECKS)
