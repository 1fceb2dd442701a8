"""What a flow class's definition must say, checked in two places with one text.

The keyword arguments each built-in step decorator takes (with their defaults), and
that a Parameter has a name. The decorators and `Parameter` (`authoring.spec`,
`authoring.decorators`) refuse a mistake when Python defines the class; the flow
file's analysis (`analysis.flowfile`) refuses it with its line before anything runs:
a misspelt `@retry(tims=3)` is the same error in the window, in `flowdeck list` and at
run time.
Decorators kept only for compatibility (`@kubernetes`, `@batch`, `@conda`, `@pypi`,
`@secrets`, `@card`) take any keyword and are not listed here. No imports: the
analysis reads this without loading the authoring API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

#: The foreach artifact of `num_parallel` fan-outs (Metaflow's @parallel): written here, where
#: the static analysis can read it without the authoring API's imports.
PARALLEL_VAR = "_parallel_ubf_iter"

STEP_DECORATOR_ARGUMENTS: dict[str, dict[str, Any]] = {
    # Retry a failed task up to `times` more times. `minutes_between_retries` is accepted
    # for Metaflow compatibility; like Metaflow's local runtime we retry at once.
    "retry": {"times": 3, "minutes_between_retries": 2},
    # After the last attempt fails, store the exception in `var` and carry on.
    "catch": {"var": None, "print_exception": True},
    # Fail (and maybe retry) a task that runs longer than the given time.
    "timeout": {"seconds": 0, "minutes": 0, "hours": 0},
    # Metaflow's resource request (see authoring.spec.resources).
    "resources": {"cpu": None, "gpu": None, "disk": None, "memory": None,
                  "shared_memory": None},
    # Set the given environment variables in the step's process.
    "environment": {"vars": {}},
    # The step runs as `num_parallel` tasks.
    "parallel": {},
}

#: Decorators kept for compatibility that take any keyword, with Metaflow's defaults
#: (what a card or secret gets when the keyword is not given).
OPEN_DECORATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "card": {"type": "default", "options": {}, "scope": "task", "rank": None,
             "timeout": 45, "id": None, "save_errors": True, "customize": False,
             "refresh_interval": 5},
    "secrets": {"sources": [], "role": None, "allow_override": False},
}

#: Where Metaflow's own `defaults` differ from the ones above, as it lists them in
#: `output-raw --json`: @retry's are strings there, and @resources' cpu and memory are the
#: cloud request Metaflow's local runtime ignores, while Flowdeck reads None as "no limit"
#: (so the values Flowdeck runs with stay above). Only values, never other keywords.
METAFLOW_LISTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "retry": {"times": "3", "minutes_between_retries": "2"},
    "resources": {"cpu": "1", "memory": "4096"},
}


def metaflow_attributes(decorator: str, given: dict[str, Any]) -> dict[str, Any]:
    """A step decorator's attributes as Metaflow lists them: every keyword it takes, in
    its own order, with its default unless `given`. A decorator whose defaults are not
    known here (`@kubernetes`, `@batch`, `@conda`, `@pypi`: Metaflow's depend on its
    configuration) gets what was given."""
    defaults = STEP_DECORATOR_ARGUMENTS.get(decorator, OPEN_DECORATOR_DEFAULTS.get(decorator))
    if defaults is None:
        return dict(given)
    return {**defaults, **METAFLOW_LISTED_DEFAULTS.get(decorator, {}), **given}


def unknown_arguments_message(decorator: str, unknown: list[str]) -> str:
    """What to say of keywords `decorator` does not take (the lint and the decorator)."""
    takes = sorted(STEP_DECORATOR_ARGUMENTS[decorator])
    names = ", ".join(f"`{n}`" for n in sorted(unknown))
    offer = f"it takes {', '.join(takes)}" if takes else "it takes no arguments"
    return (f"@{decorator} has no argument {names} ({offer}). Fix the name, or remove "
            "the argument.")


#: A Parameter without its name.
PARAMETER_NAME_MESSAGE = ("A Parameter needs its name, a string, as its first argument: "
                          "`alpha = Parameter(\"alpha\", default=...)` (the name is what the "
                          "command line takes, --alpha).")

def separator_message(name: str, typed: bool) -> str:
    """`separator=` on a parameter that is not a string (Metaflow refuses it too)."""
    fix = ("Drop type= (the items are strings), then convert them in the step." if typed
           else "Give it a string default, such as \"a,b\", then convert the items in the "
                "step.")
    return (f"Parameter `{name}`: separator= splits a string into a list, so it is only "
            f"allowed for string parameters (as in Metaflow). {fix}")


def custom_start_end_message(keyword: str) -> str:
    """`@step(start=True)` / `@step(end=True)`: Metaflow 2.19 lets any step be the first or
    the last; Flowdeck's graph, resume and window find them by name."""
    name = "start" if keyword == "start" else "end"
    return (f"`@step({keyword}=True)` makes another step the {'first' if name == 'start' else 'last'} "
            f"one in Metaflow 2.19; Flowdeck does not support it yet. Name that step "
            f"`{name}` and decorate it with a plain `@step`.")


#: The flow's own attributes a step reads and cannot set, and what each is: the step
#: refuses `self.name = ...` saying so (Python said only "property 'name' of 'X' object
#: has no setter"), and the flow's check warns of it with its line.
READ_ONLY_FLOW_ATTRIBUTES = {
    "name": "it is the flow's name",
    "input": "it is the foreach item this task works on",
    "index": "it is the index of this task's foreach item",
}

#: The step names Metaflow refuses (its lint's RESERVED), refused here for every flow.
RESERVED_STEP_NAMES = frozenset({"name", "next", "input", "index", "cmd"})

#: Methods of Flowdeck's FlowSpec that a step of the same name hides (Python keeps the
#: step), and what the flow then loses: a warning for a flow written for Flowdeck, since
#: its engine runs such a step. Metaflow allows these step names.
HIDDEN_FLOW_METHODS = {
    "run": "`{flow}().run(...)` no longer starts the flow; run it with `python {file} run` "
           "or `flowdeck run {file}`, or rename the step to keep `.run()`",
    "merge_artifacts": "a join cannot call `self.merge_artifacts(inputs)`; rename the step "
                       "to keep it",
    "foreach_stack": "a step cannot call `self.foreach_stack()`; rename the step to keep it",
}

#: The names a flow answers itself (FlowSpec's public attributes and methods): no artifact
#: can take them (`@catch(var="next")` replaced the method, and the caught exception was
#: dropped without a word).
FLOW_OWN_NAMES = RESERVED_STEP_NAMES | frozenset(HIDDEN_FLOW_METHODS)


def catch_var_problem(var: Any) -> str | None:
    """What is wrong with `@catch(var=...)`, or None: the artifact that keeps the caught
    exception needs a name (`var=5` failed the task with "attribute name must be string"
    and no line; `var="next"` lost the exception)."""
    if var is None or (isinstance(var, str) and var.isidentifier()
                       and not var.startswith("__") and var not in FLOW_OWN_NAMES):
        return None
    why = (f"`{var}` is taken by the flow itself" if isinstance(var, str) and var in FLOW_OWN_NAMES
           else f"{var!r} is no artifact name")
    return (f"@catch(var={var!r}): var= names the artifact that keeps the caught exception, "
            f"and {why}. Write a name such as `var=\"error\"`, then read `self.error` in "
            "the next step.")


def catch_var_clash(var: Any, parameters: Iterable[str], steps: Iterable[str]) -> str | None:
    """What is wrong with `@catch(var=...)` naming one of the flow's parameters or steps,
    or None: the exception cannot be stored there (a parameter's: "parameters are
    read-only", the task failed and the caught exception was lost; a step's: an artifact
    named like the step). The flow's definition is needed, so the run and the analysis
    check it, not the decorator."""
    if not isinstance(var, str):
        return None
    if var in parameters:
        what = "a parameter"
    elif var in steps:
        what = "a step"
    else:
        return None
    return (f"@catch(var={var!r}): `{var}` is {what} of this flow, so the caught exception "
            "cannot be stored under that name. Write another, such as `var=\"error\"`.")


#: Checks of a decorator's arguments beyond their names (the decorator and the analysis).
ARGUMENT_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {"catch": lambda args: catch_var_problem(args.get("var"))}


#: Every built-in step decorator (Metaflow's, those kept for compatibility included): the
#: analysis warns when one is written below `@step`, an order Metaflow refuses.
BUILT_IN_STEP_DECORATORS = frozenset((*STEP_DECORATOR_ARGUMENTS, "kubernetes", "batch",
                                      "conda", "pypi", "secrets", "card", "parallel"))
