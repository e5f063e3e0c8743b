"""Framework-neutral pieces of the integrations."""

from __future__ import annotations


def test_integrations_read_the_failing_pair_from_the_exception_attribute():
    from ledom_reason.integrations._common import scoring_error
    from ledom_reason.types import InvalidPairError

    err = scoring_error(InvalidPairError("`candidate` is empty", 1), ["first", "second"])
    assert err.index == 1 and err.candidate == "second" and "candidate 1" in str(err)
    # a message that merely looks like one is not parsed: only the attribute counts
    plain = scoring_error(ValueError("pair 1: something"), ["first", "second"])
    assert plain.index is None and plain.candidate is None
