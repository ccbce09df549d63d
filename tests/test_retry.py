"""retry.py's plan, on a clock the test moves: when a lost connection is made again under AWS IoT
Core's rules (one CONNECT a second per client id), when the session stops trying each second, and
how it backs off from a broker that asks for less or a connection that keeps ending."""

from iotnotify.mqtt.retry import FAST_FOR, STABLE, Plan, Retry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connected_for(retry: Retry, clock: Clock, seconds: float) -> None:
    retry.attempted()
    retry.connected()
    clock.now += seconds


def test_a_connection_lost_long_after_its_connect_is_made_again_at_once():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    connected_for(retry, clock, 3600)
    assert retry.lost() == Plan(clock.now, patient=False)


def test_a_connection_lost_within_a_second_of_its_connect_waits_for_the_second():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    retry.attempted()
    clock.now += 0.5  # TLS, the upgrade, the keys: the CONNECT goes out, the CONNACK comes
    retry.connected()
    clock.now += 0.25
    assert retry.lost() == Plan(1001.5, patient=False)  # a second after the CONNACK, not the attempt


def test_the_broker_asking_for_less_gets_a_client_that_backs_off_waiting_longer_each_time():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    connected_for(retry, clock, 60)
    assert retry.lost(0x89) == Plan(clock.now + 2.0, patient=True)  # server busy
    retry.patient = True
    retry.attempted()
    clock.now += 0.1
    # a CONNACK (rate exceeded): its CONNECT went out after the attempt began, so a second from now
    assert retry.failed(0x9F) == Plan(clock.now + 1.0 + 4.0, patient=True)
    retry.attempted()
    clock.now += 0.1
    assert retry.failed(0x97) == Plan(clock.now + 1.0 + 8.0, patient=True)  # quota exceeded


def test_failed_attempts_go_on_each_second_for_fast_for_then_back_off():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    connected_for(retry, clock, 100)
    retry.lost()
    plans = []
    for _ in range(int(FAST_FOR) + 2):  # an attempt each second (the transport's own), each failing
        retry.attempted()
        clock.now += 1.0
        plans.append(retry.failed())
    first = next(i for i, plan in enumerate(plans) if plan is not None)
    assert first == int(FAST_FOR) - 1 and plans[first].patient
    retry.patient = True  # the session made it
    retry.attempted()
    clock.now += 4
    assert retry.failed() is None  # its client backs off by itself


def test_a_flapping_connection_backs_off_once_fast_for_has_gone_by():
    """Connections that end within STABLE seconds of being made are one outage: at once at first,
    then, FAST_FOR into it, patient starts after waits of 2, 4, 8... s up to the longest."""
    clock = Clock()
    retry = Retry(1.0, 10.0, clock=clock)
    connected_for(retry, clock, 100)
    waits = []
    for _ in range(9):
        plan = retry.lost()
        waits.append((plan.patient, plan.at - clock.now))
        clock.now = plan.at
        connected_for(retry, clock, 5)  # made again, ended again 5 s later
    assert waits == [(False, 0.0)] * 4 + [(True, 2.0), (True, 4.0), (True, 8.0), (True, 10.0), (True, 10.0)]


def test_a_stable_connection_ends_the_outage():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    connected_for(retry, clock, 100)
    retry.lost()
    clock.now += FAST_FOR + 5
    connected_for(retry, clock, STABLE)
    assert retry.lost() == Plan(clock.now, patient=False)  # a new outage: at once, each second again


def test_a_new_transport_that_never_connected_begins_its_outage_at_its_first_failure():
    clock = Clock()
    retry = Retry(1.0, 30.0, clock=clock)
    retry.attempted()
    clock.now += 2
    assert retry.failed() is None and retry.down_since == clock.now
