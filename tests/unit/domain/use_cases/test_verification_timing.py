"""VerifyEmail's code path costs the store the same calls whether the address has no account or
a verified one, or its time tells which addresses are registered: the unknown address pays a
shadow write, a wrong code for an unverified account a real one, a verified account the shadow."""

from __future__ import annotations

import pytest

from domain.errors import InvalidVerificationCode
from tests.unit.domain.use_cases.auth_kit import EMAIL, AuthKit
from tests.unit.domain.use_cases.test_verification import register, verify


async def test_a_code_for_a_verified_address_costs_what_an_unknown_address_costs() -> None:
    kit = AuthKit()
    await register(kit, verified=True)
    commits, shadows = kit.store.commits, kit.store.shadow_logins

    with pytest.raises(InvalidVerificationCode):
        await verify(kit, email=EMAIL, code="123456")

    # An unknown address makes one shadow write (tests/unit/.../test_verification.py); a wrong
    # code for an unverified account one real write. A verified account makes neither.
    assert (kit.store.commits - commits) + (kit.store.shadow_logins - shadows) == 1
