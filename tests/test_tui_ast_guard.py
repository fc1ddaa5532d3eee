"""The app's guard against CPython 3.11's AST race (simulator/tui/ast_guard.py).

What failed: once in 7 fresh starts the first screen showed "Something went wrong -
SystemError: AST constructor recursion depth mismatch": the warm-up thread imported inflect
(typeguard parses inflect's module once per checked method) while Textual, on the event loop,
parsed action strings with ``ast.literal_eval``. The test below does the same two things at once,
many times over: without the guard it fails within a few parses on Python 3.11.
"""

from __future__ import annotations

import ast
import inspect
import threading

from simulator.tui import ast_guard
from simulator.tui.app import SimulatorApp


class _Cycle:
    """Cyclic garbage with a finalizer: the collector then runs Python code in the middle of
    whatever allocates, which is how the GIL changes threads inside a parse."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(20))


def test_parsing_in_two_threads_at_once_never_fails() -> None:
    ast_guard.install()
    assert ast_guard.installed()
    big = inspect.getsource(ast)  # a module of typeguard's size (inflect's is larger)
    errors: list[BaseException] = []
    parsed = threading.Event()

    def warm_up_thread() -> None:
        try:
            for _ in range(12):
                ast.parse(big)
        except BaseException as exc:  # what the app's error modal showed
            errors.append(exc)
        finally:
            parsed.set()

    thread = threading.Thread(target=warm_up_thread)
    thread.start()
    evaluated = 0
    try:
        while not parsed.is_set():  # the event loop parsing actions meanwhile
            assert ast.literal_eval("('tab-roles', 1, [2, 3])") == ("tab-roles", 1, [2, 3])
            _Cycle()
            evaluated += 1
    except SystemError as exc:
        errors.append(exc)
    finally:
        thread.join()
    assert not errors, errors
    assert evaluated > 0


def test_the_app_installs_the_guard_before_it_starts_threads() -> None:
    ast.parse = ast_guard._ORIGINAL_PARSE  # as a fresh interpreter has it
    SimulatorApp(offer_example=False)
    assert ast_guard.installed()
    assert ast.literal_eval("(1,)") == (1,)


def test_inflect_is_preloaded_without_parsing_anything() -> None:
    """The warm-up's seconds came from typeguard parsing inflect's module once per checked
    method; the app imports inflect uninstrumented in its main thread instead (no parse at
    all), and leaves typeguard as it was for everything else."""
    import subprocess
    import sys

    code = """
import ast
from simulator.roles.preload import preload  # the domain's pydantic models parse a little
parses = 0
original = ast.parse
def counting(*args, **kwargs):
    global parses
    parses += 1
    return original(*args, **kwargs)
ast.parse = counting
import typeguard
decorator = typeguard.typechecked
preload()
import inflect
print(parses, typeguard.typechecked is decorator, inflect.engine().plural_noun("guard"))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["0", "True", "guards"], done.stdout + done.stderr


def test_the_first_inflection_of_any_program_skips_typeguards_parsing() -> None:
    """The command line renders prompts without the app's preload: its first plural goes through
    ``simulator.roles.preload`` too, so a ``simulator run`` or ``validate`` never pays the
    seconds of typeguard parsing inflect's module (about 30 parses before)."""
    import subprocess
    import sys

    code = """
import ast
parses = 0
original = ast.parse
def counting(*args, **kwargs):
    global parses
    parses += 1
    return original(*args, **kwargs)
from simulator.roles.english import role_noun
import typeguard
decorator = typeguard.typechecked
ast.parse = counting
import sys
assert "inflect" not in sys.modules
print(role_noun("Guard", 2), parses, typeguard.typechecked is decorator)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["guards", "0", "True"], done.stdout + done.stderr
