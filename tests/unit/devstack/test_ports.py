import socket

from ponix_devstack import StackPorts, free_port, port_is_free


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(20)]

    assert len(set(ports)) == len(ports)
    assert all(port_is_free(port) for port in ports)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert not port_is_free(port)


def test_taken_preferred_ports_fall_back_to_any_free_port() -> None:
    open_port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]

        ports = StackPorts(nats=taken, nats_monitor=open_port).if_free()

    assert ports == StackPorts(nats=None, nats_monitor=open_port)


def test_standard_ports_are_the_servers_well_known_ones() -> None:
    assert StackPorts.standard() == StackPorts(4222, 8222, 9000, 8123)
