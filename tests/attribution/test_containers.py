"""The address -> container map: time-aware, so a reused address names the right container."""

from __future__ import annotations

from egresswatch.attribution.containers import Container, ContainerMap

A = Container(id="a" * 64, name="ollama", image="ollama/ollama:latest")
B = Container(id="b" * 64, name="dify-api-1", image="langgenius/dify-api:1.0")
IP = "172.17.0.2"


def test_an_address_reused_by_a_second_container_names_each_in_its_time() -> None:
    m = ContainerMap()
    m.holds(A, [IP], since=100.0)
    m.released(A.id, at=150.0)
    m.holds(B, [IP], since=160.0)
    assert m.at(IP, 120.0) == A
    assert m.at(IP, 155.0) is None  # nobody held it then: never a guess
    assert m.at(IP, 170.0) == B
    assert m.at(IP, 99.0) is None


def test_a_new_holder_ends_the_previous_one_even_without_its_die_event() -> None:
    m = ContainerMap()
    m.holds(A, [IP], since=100.0)
    m.holds(B, [IP], since=160.0)
    assert m.at(IP, 150.0) == A and m.at(IP, 165.0) == B


def test_an_address_dropped_on_reconnect_is_released_then() -> None:
    m = ContainerMap()
    m.holds(A, [IP, "172.18.0.5"], since=100.0)
    m.holds(A, ["172.18.0.5"], since=200.0)  # disconnected from the default bridge at 200
    assert m.at(IP, 150.0) == A and m.at(IP, 250.0) is None
    assert m.at("172.18.0.5", 250.0) == A


def test_gone_containers_are_forgotten_after_keep() -> None:
    m = ContainerMap(keep=60.0)
    m.holds(A, [IP], since=100.0)
    m.released(A.id, at=150.0)
    m.forget(now=200.0)
    assert m.at(IP, 120.0) == A
    m.forget(now=211.0)
    assert m.at(IP, 120.0) is None and len(m) == 0


def test_a_name_recreated_from_another_image_is_an_image_change() -> None:
    m = ContainerMap()
    old = Container(id="a" * 64, name="ollama", image="ollama/ollama:latest", image_id="sha256:1")
    new = Container(id="b" * 64, name="ollama", image="ollama/ollama:latest", image_id="sha256:2")
    m.holds(old, [IP], since=100.0)
    m.holds(old, [IP], since=150.0)  # the same container seen again: nothing changed
    assert m.take_image_changes() == []
    m.released(old.id, at=200.0)
    m.holds(new, [IP], since=210.0)
    assert m.take_image_changes() == [(new, "sha256:1", 210.0)]
    assert m.take_image_changes() == []
