"""Flowdeck's stand-in for the suite's `metaflow_test` helper package.

Every generated `test_flow.py` starts with
`from metaflow_test import assert_equals, ..., ResumeFromHere, TestRetry, try_to_get_card`
and every `check_flow.py` with `from metaflow_test import ..., new_checker`. The suite's
own package imports Metaflow (`metaflow.exception`, `metaflow.cards`, ...), which is
blocked in the flow and check processes, so this package offers the same names, with the
same behaviour, on top of Flowdeck. It is our code, written from the suite's interface
(names, messages, exception classes and module name `metaflow_test`, which
`catch_retry.py` checks as "metaflow_test.TestRetry"); it is not a copy of the suite.

Anything Flowdeck lacks fails only when a step actually uses it.
"""

from __future__ import annotations

import sys

from flowdeck import current

try:  # a Metaflow-compatible base class, if Flowdeck grows one
    from flowdeck.exception import MetaflowException as _Base  # type: ignore
except ImportError:
    _Base = Exception


# -- what the generator attaches to test methods (kept for completeness) ----------

def steps(prio, quals, required=False):
    def wrapper(f):
        f.is_step = True
        f.prio = prio
        f.quals = set(quals)
        f.required = required
        f.tags = []
        return f

    return wrapper


def tag(tagspec, **kwargs):
    def wrapper(f):
        f.tags.append(tagspec)
        return f

    return wrapper


class MetaflowTest:
    PRIORITY = 999999999
    PARAMETERS: dict = {}
    INCLUDE_FILES: dict = {}
    CONFIGS: dict = {}
    CLASS_VARS: dict = {}
    HEADER = ""

    def check_results(self, flow, checker):
        return False


# -- assertions --------------------------------------------------------------------

def truncate(var):
    var = str(var)
    return "%s..." % var[:500] if len(var) > 500 else var


class AssertArtifactFailed(Exception):
    pass


class AssertLogFailed(Exception):
    pass


class AssertCardFailed(Exception):
    pass


class ExpectationFailed(Exception):
    def __init__(self, expected, got):
        super().__init__("Expected result: %s, got %s" % (truncate(expected), truncate(got)))


def assert_equals(expected, got):
    if expected != got:
        raise ExpectationFailed(expected, got)


def assert_equals_metadata(expected, got, exclude_keys=None):
    exclude = set(exclude_keys or [])
    k1, k2 = set(expected) - exclude, set(got) - exclude
    if k1 ^ k2:
        raise ExpectationFailed("keys: %s" % k1, "keys: %s" % k2)
    for k in k1:
        if expected[k] != got[k]:
            raise ExpectationFailed("[%s]: %s" % (k, expected[k]), "[%s]: %s" % (k, got[k]))


def assert_exception(func, exception):
    try:
        func()
    except exception:
        return
    except Exception as ex:
        raise ExpectationFailed(exception, ex) from ex
    else:
        raise ExpectationFailed(exception, "no exception")


# -- used inside steps ---------------------------------------------------------------

class ResumeFromHere(_Base):
    headline = "Resume requested"

    def __init__(self):
        super().__init__("This is not an error. Testing resume...")


class TestRetry(_Base):
    headline = "Testing retry"

    def __init__(self):
        super().__init__("This is not an error. Testing retry...")


def is_resumed():
    return current.origin_run_id is not None


def origin_run_id_for_resume():
    return current.origin_run_id


def retry_until_timeout(cb_fn, *args, timeout=4, **kwargs):
    import time

    start = time.time()
    while True:
        value = cb_fn(*args, **kwargs)
        if value is not False:
            return value
        if time.time() - start > timeout:
            raise TimeoutError("Timeout waiting for callback to return non-False value")
        time.sleep(1)


def get_card_container(id=None):
    from flowdeck.cards import get_cards  # ImportError names the missing feature

    try:
        container = get_cards(current.pathspec, id=id)
    except LookupError:
        return None
    return container if len(container) > 0 else None


def try_to_get_card(id=None, timeout=60):
    def _get_card(card_id):
        container = get_card_container(id=card_id)
        return False if container is None else container[0]

    return retry_until_timeout(_get_card, id, timeout=timeout)


# -- checkers -------------------------------------------------------------------------

class MetaflowCheck:
    """The checker interface of the suite (`run_id` and options come from argv)."""

    def __init__(self, flow):
        pass

    def get_run(self):
        return None

    @property
    def run_id(self):
        return sys.argv[2]

    @property
    def cli_options(self):
        return sys.argv[3:]


def new_checker(flow):
    """The checker named by argv[1], as the suite's check_flow.py asks for it."""
    from .flowdeck_check import MetadataCheck

    name = sys.argv[1]
    if name != "MetadataCheck":
        raise NotImplementedError(f"the Flowdeck compatibility run implements only "
                                  f"MetadataCheck, not {name}")
    return MetadataCheck(flow)
