"""The security mail limit on the User aggregate: one mail per cool-down, a few per window."""

from __future__ import annotations

from datetime import timedelta

from domain.policies import SecurityMailPolicy
from tests.builders import T0, new_user

POLICY = SecurityMailPolicy(cooldown=timedelta(seconds=60), max_per_window=5)


def test_a_user_never_mailed_may_be_mailed() -> None:
    assert new_user().may_send_security_mail(T0, POLICY)


def test_no_second_mail_within_the_cool_down() -> None:
    user = new_user()
    user.record_security_mail(T0, POLICY)

    assert not user.may_send_security_mail(T0, POLICY)
    assert not user.may_send_security_mail(T0 + timedelta(seconds=59.999), POLICY)
    assert user.may_send_security_mail(T0 + timedelta(seconds=60), POLICY)


def test_at_most_the_maximum_within_the_window_however_spaced() -> None:
    user = new_user()
    sent = [T0 + timedelta(minutes=2 * n) for n in range(5)]
    for moment in sent:
        assert user.may_send_security_mail(moment, POLICY)
        user.record_security_mail(moment, POLICY)

    assert not user.may_send_security_mail(T0 + timedelta(minutes=30), POLICY)
    assert not user.may_send_security_mail(T0 + timedelta(minutes=59, seconds=59), POLICY)
    # An hour after the first, it has left the window: one more may go.
    assert user.may_send_security_mail(T0 + timedelta(hours=1), POLICY)


def test_only_the_mail_still_inside_the_window_is_kept() -> None:
    user = new_user()
    for minutes in (0, 10, 20, 70):
        user.record_security_mail(T0 + timedelta(minutes=minutes), POLICY)

    assert user.security_mail_sent_at == (
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=70),
    )


def test_the_kept_record_never_exceeds_the_maximum() -> None:
    user = new_user()
    tight = SecurityMailPolicy(cooldown=timedelta(0), max_per_window=2)
    for seconds in range(4):
        user.record_security_mail(T0 + timedelta(seconds=seconds), tight)

    assert len(user.security_mail_sent_at) == 2
    assert not user.may_send_security_mail(T0 + timedelta(seconds=5), tight)


def test_a_clock_behind_the_last_mail_does_not_let_another_through() -> None:
    user = new_user()
    user.record_security_mail(T0, POLICY)

    assert not user.may_send_security_mail(T0 - timedelta(seconds=5), POLICY)
