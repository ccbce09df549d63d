"""retry.py's plan, on a clock the test moves: when a lost connection is made again under AWS IoT
Core's rules (one CONNECT a second per client id), and when the session stops trying each second."""

from iotnotify.mqtt.retry import FAST_FOR, Plan, Retry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_connection_lost_long_after_its_connect_is_made_again_at_once():
    clock = Clock()
    retry = Retry(1.0, clock=clock)
    retry.attempted()
    clock.now += 3600
    assert retry.lost() == Plan(clock.now, patient=False)


def test_a_connection_lost_within_a_second_of_its_connect_waits_for_the_second():
    clock = Clock()
    retry = Retry(1.0, clock=clock)
    retry.attempted()
    clock.now += 0.25
    assert retry.lost() == Plan(1001.0, patient=False)


def test_the_broker_asking_for_less_gets_a_client_that_backs_off():
    clock = Clock()
    retry = Retry(1.0, clock=clock)
    retry.attempted()
    clock.now += 60
    for code in (0x89, 0x97, 0x9F):  # server busy, quota exceeded, connection rate exceeded
        assert retry.lost(code) == Plan(clock.now + 2.0, patient=True)


def test_failed_attempts_go_on_each_second_for_fast_for_then_back_off():
    clock = Clock()
    retry = Retry(1.0, clock=clock)
    retry.attempted()
    clock.now += 100
    retry.lost()
    plans = []
    for _ in range(int(FAST_FOR) + 2):  # an attempt each second (the transport's own), each failing
        retry.attempted()
        clock.now += 1.0
        plans.append(retry.failed())
    first = next(i for i, plan in enumerate(plans) if plan is not None)
    assert first == int(FAST_FOR) - 1 and plans[first] == Plan(clock.now - len(plans) + first + 1, patient=True)
    retry.patient = True  # the session made it
    retry.attempted()
    clock.now += 4
    assert retry.failed() is None  # its client backs off by itself


def test_a_connection_made_again_starts_the_next_outage_afresh():
    clock = Clock()
    retry = Retry(1.0, clock=clock)
    retry.lost()
    clock.now += FAST_FOR + 5
    retry.connected()
    assert retry.down_since is None
    retry.attempted()
    clock.now += 2
    assert retry.failed() is None  # a transport made anew (new keys) failing: its outage begins now
    assert retry.down_since == clock.now
