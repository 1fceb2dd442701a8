"""Ask Flowdeck, once per measurement, what it offers (run in the flow processes' sandbox).

    python probe.py REQUEST.json RESULT.json

REQUEST: {"imports": [[module, name], ...]}. RESULT:
  "missing_imports": the (module, name) pairs the generated code imports that
      Flowdeck does not provide (a module that cannot be imported counts for all
      of its names), so the to-do list names every missing name, not only the
      first one Python reports;
  "help": the option names `python flow.py --help`, `run --help`, `resume --help`
      print for a minimal Flowdeck flow, to decide which of the context's
      command-line options Flowdeck accepts;
  "metaflow_blocked": whether `import metaflow` fails here, as it must;
  "alias_is_flowdeck": whether, once Flowdeck's alias entry installs its finder,
      `metaflow` and `metaflow.exception` are Flowdeck's own module objects (so the
      unchanged files run on Flowdeck, the blocked package never reached).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile

_FLOW = '''from flowdeck import FlowSpec, step


class ProbeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProbeFlow()
'''

_OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def _options(folder: str, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-B", "flow.py", *args, "--help"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    return sorted(set(_OPTION.findall(proc.stdout + proc.stderr)))


def main() -> int:
    request_path, result_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    missing = []
    for module_name, name in request.get("imports", []):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing.append([module_name, name, f"no module {module_name} ({exc})"])
            continue
        if name != "*" and not hasattr(module, name):
            missing.append([module_name, name, f"{module_name} has no {name}"])
    try:
        import metaflow  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    from flowdeck.engines.as_metaflow import install
    install(result_path)
    import metaflow  # noqa: F811 - now the alias
    import metaflow.exception

    import flowdeck
    import flowdeck.exception
    alias = (metaflow is flowdeck and metaflow.exception.MetaflowException
             is flowdeck.exception.MetaflowException)
    with tempfile.TemporaryDirectory(prefix="flowdeck_compat_probe_") as folder:
        with open(os.path.join(folder, "flow.py"), "w", encoding="utf-8") as handle:
            handle.write(_FLOW)
        help_ = {"top": _options(folder), "run": _options(folder, "run"),
                 "resume": _options(folder, "resume")}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump({"missing_imports": missing, "help": help_, "metaflow_blocked": blocked,
                   "alias_is_flowdeck": alias}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
