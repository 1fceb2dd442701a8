"""Where runs live on disk: the one module that knows the store's paths.

Layout under a root (by default the project's `.flowdeck/`)::

    blobs/ab/ab12...                                 content-addressed artifact values
    <Flow>/runs/<run_id>/run.json                    the run record (records.RunRecord)
    <Flow>/runs/<run_id>/events.jsonl                the event stream (docs/events.md)
    <Flow>/runs/<run_id>/.space-reserve              room for a run's last records (while it runs)
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.json   an attempt record
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.out    its stdout (.err: stderr)
    <Flow>/runs/<run_id>/<step>/<task_id>/cards/cards.json   the task's cards (flowdeck.cards.index)
    <Flow>/runs/<run_id>/<step>/<task_id>/cards/<i>-<type>.html   one card (.data.json: its data)
    logs/<run_id>.log                                a headless run's combined output
    datastores/<name>/                               the working copy of an object-store root
    datastore.json                                   in a working copy: which object store it copies
    <Flow>/runs/<run_id>/pinned                      present when the user pinned the run
    <Flow>/runs/.deleting-<run_id>/                  a run being deleted (out of every listing)
    settings.json                                    the store's own settings (`keep_runs`)

Every id that becomes part of a path is validated here first, so nothing read
from a record or a command line can point outside the root.

An object-store root (`s3://bucket/prefix`, `$FLOWDECK_DATASTORE`) has the very same
layout under its prefix; locally, a *working copy* (a folder of this layout holding
`datastore.json`) keeps what a run writes as it goes and what a reader fetched
(`store.objectstore` moves files between the two; docs/scale-out.md, "Store").
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from flowdeck.compiled_dataclasses import dataclass

ROOT_ENV = "FLOWDECK_HOME"
#: An object-store URL (`s3://bucket/prefix`) runs store their artifacts and records in.
DATASTORE_ENV = "FLOWDECK_DATASTORE"
DATASTORE_FILE = "datastore.json"  # in a working copy: {"url": ..., "role": "run"|"cache"}
DATASTORES_DIR = "datastores"
RUN_ID_ENV = "FLOWDECK_RUN_ID"  # the run id a launcher chose, read by the flow process
DEFAULT_DIRNAME = ".flowdeck"
RUN_JSON = "run.json"
EVENTS = "events.jsonl"
SPACE_RESERVE = ".space-reserve"
LOG_KINDS = ("out", "err")
PINNED = "pinned"  # a marker file, not a RunRecord field: the run's writer rewrites run.json
#: In a working copy, a run fetched from its object store rather than made here: a fetch
#: drops it when the store no longer has it (never uploaded: a local mark only).
FETCHED = ".fetched"
SETTINGS = "settings.json"
CARDS_DIR = "cards"
CARD_INDEX = "cards.json"
CARD_KINDS = {"html": "html", "data": "data.json"}
DELETING = ".deleting-"  # a leading '.' is never a valid id, so listings skip these folders
#: The longest id (flow, run, step, task) the store takes as a path component, in ASCII
#: characters: well under any file system's name limit (255 bytes on Linux).
MAX_ID_LENGTH = 100
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}$" % (MAX_ID_LENGTH - 1))


class InvalidId(ValueError):
    """An id (run, step, task, flow) that cannot be part of a path."""


def check_id(kind: str, value: str) -> str:
    """`value` if it is a safe path component (`is_id`), else InvalidId saying why."""
    if not is_id(value):
        raise InvalidId(f"{kind} {value!r} is not valid: use ASCII letters, digits, '.', "
                        f"'_' and '-', or a Python name (at most {MAX_ID_LENGTH} bytes, not "
                        "starting with '.' or '-').")
    return value


def is_id(value: object) -> bool:
    """Whether `value` can be an id of the store (a flow, run, step or task folder): ASCII
    letters, digits, `_`, `.`, `-` (not first: `.`, `-`), or a Python identifier such as
    `GrüßeFlow`; at most MAX_ID_LENGTH bytes. The one test for both writing and listing."""
    if not isinstance(value, str):
        return False
    return bool(_ID.match(value)) or _is_unicode_name(value)


def _is_unicode_name(value: str) -> bool:
    """A non-ASCII Python identifier: Metaflow runs `class GrüßeFlow`, and it names its
    runs' folders as safely as an ASCII name does. It holds no separator, dot, space or
    control character. Only its NFKC form is taken, the one Python gives the class
    (`class ﬁFlow` is `fiFlow`), so two spellings of one name never make two folders; as
    for ASCII names, two differing only in case share a folder on a case-insensitive
    file system. Its UTF-8 bytes count against MAX_ID_LENGTH (file systems limit bytes),
    and a file system whose encoding cannot write it refuses it here, not at mkdir."""
    import unicodedata  # here: only a non-ASCII name needs it, not every flow's startup
    if not value.isidentifier() or unicodedata.normalize("NFKC", value) != value:
        return False
    try:
        value.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        return False
    return len(value.encode("utf-8")) <= MAX_ID_LENGTH


def new_run_id() -> str:
    """A fresh run id: milliseconds (so ids sort by start) plus a random part.

    The random part keeps two runs started in the same millisecond (two windows,
    a script) from choosing the same id; creating the run folder exclusively
    settles the rest. `os.urandom`, which is what `secrets.token_hex` reads, without
    the import of OpenSSL's `hmac` that `secrets` costs every flow script (3 ms).
    """
    return f"{int(time.time() * 1000)}-{os.urandom(3).hex()}"


def default_root(flow_file: str | os.PathLike[str] | None,
                 environ: Mapping[str, str] | None = None) -> Path:
    """The store of a flow file: `$FLOWDECK_HOME` if set, else `.flowdeck/` beside the file;
    with `$FLOWDECK_DATASTORE` an object-store URL, that store's working copy inside it.
    `environ`: the environment of the process that runs it (this one's by default)."""
    environ = os.environ if environ is None else environ
    env = environ.get(ROOT_ENV)
    if env:
        local = Path(env).expanduser().resolve()
    else:
        base = Path(flow_file).resolve().parent if flow_file else Path.cwd()
        local = base / DEFAULT_DIRNAME
    url = environ.get(DATASTORE_ENV)
    return working_root(local, url) if url and is_store_url(url) else local


def is_store_url(value: object) -> bool:
    """True for an object-store URL (`s3://...`, `gs://...`); a path or `file://` is local."""
    if not isinstance(value, str) or "://" not in value:
        return False
    scheme = value.split("://", 1)[0].lower()
    return bool(scheme) and scheme not in ("file", "local") and scheme.isidentifier()


#: The object stores Flowdeck writes to, by URL scheme (fsspec's names; `objectstore`
#: names the package each needs).
STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
#: The forms of a store URL, as the refusals say them.
STORE_URL_FORMS = "s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX"


def store_url_problem(url: str) -> str | None:
    """What is wrong with an object-store URL before anything is asked of it (a scheme no
    store of ours has, no bucket), or None. `s3://` reached S3 and came back as botocore's
    "Invalid length for parameter Key"; `ftp://x/p` was taken, and failed later with
    advice about $AWS_ENDPOINT_URL."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in STORE_SCHEMES:
        return (f"{scheme}:// is no object store Flowdeck writes to; give "
                f"{STORE_URL_FORMS}")
    if not rest.split("/", 1)[0]:
        return f"it names no bucket; give {STORE_URL_FORMS}"
    return None


def normal_url(url: str) -> str:
    """An object-store URL without trailing slashes (`s3://b/p/` and `s3://b/p` are one root)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.strip('/')}"


def _url_folder(url: str) -> str:
    """A folder name for an object-store URL: readable, and distinct per URL (a short hash)."""
    import hashlib
    url = normal_url(url)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.replace("://", "-")).strip("-.")[:60]
    return f"{readable or 'store'}-{hashlib.blake2b(url.encode(), digest_size=4).hexdigest()}"


def working_root(local_root: str | os.PathLike[str], url: str) -> Path:
    """Where a run of this machine keeps its working copy of the object store `url`: a
    folder of the local store (the window and `flowdeck run` follow its events there)."""
    return Path(local_root) / DATASTORES_DIR / _url_folder(url)


def cache_root(url: str) -> Path:
    """Where the client keeps what it fetched of the object store `url` (per user)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flowdeck" / DATASTORES_DIR / _url_folder(url)


@dataclass(frozen=True)
class DatastoreMark:
    """What `datastore.json` says of a working copy: the object store it copies, and
    whether a run writes it (`run`: local files are newer) or a reader fills it (`cache`)."""

    url: str
    role: str


def datastore_of(root: str | os.PathLike[str]) -> DatastoreMark | None:
    """The object store a local root is a working copy of; None for a plain local store.

    One failed open for a plain store: cheap enough for every task's start-up.
    """
    try:
        with open(os.path.join(root, DATASTORE_FILE), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not is_store_url(url):
        return None
    return DatastoreMark(normal_url(url), str(data.get("role") or "run"))


def mark_datastore(root: str | os.PathLike[str], url: str, role: str) -> None:
    """Make `root` a working copy of `url` (written once; the same content every time)."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    mark = DatastoreMark(normal_url(url), role)
    if datastore_of(folder) == mark:
        return
    tmp = folder / f".{DATASTORE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"url": mark.url, "role": mark.role}), encoding="utf-8")
    os.replace(tmp, folder / DATASTORE_FILE)


def object_key(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """The key (relative, `/`-separated) of a working copy's file in its object store.

    The object store has the working copy's layout, so a key is the file's path below
    the root; ValueError for a path outside it (never a key that climbs out of the prefix).
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == "." or rel.startswith("..") or os.path.isabs(rel):
        raise ValueError(f"{path} is not inside the store {root}")
    return rel.replace(os.sep, "/")


def stores_in_reach(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The stores a reader sees without naming a flow (Metaflow's `Metaflow().flows`): the
    given root (or the `.flowdeck/` in it), `$FLOWDECK_HOME`, else every `.flowdeck/` from
    the working directory upward, nearest first. An object-store URL (given, or
    `$FLOWDECK_DATASTORE`) gives its local cache (`cache_root`), as `find_root` does: a
    Path of the URL was `s3:/bucket/prefix`, a folder that does not exist."""
    url = store_url_of(root)
    if url is not None:
        return [cache_root(url)]
    if root is not None:
        given = Path(root)
        return [given / DEFAULT_DIRNAME if (given / DEFAULT_DIRNAME).is_dir() else given]
    if os.environ.get(ROOT_ENV):
        return [Path(os.environ[ROOT_ENV]).expanduser()]
    here = Path.cwd().resolve()
    return [f / DEFAULT_DIRNAME for f in (here, *here.parents) if (f / DEFAULT_DIRNAME).is_dir()]


def store_url_of(root: str | os.PathLike[str] | None) -> str | None:
    """The object store a reader reads: the given root when it is a URL, else (no root
    given) `$FLOWDECK_DATASTORE` when that is one; None for a folder."""
    url = str(root) if root is not None else os.environ.get(DATASTORE_ENV)
    return url if is_store_url(url) else None


#: The stores this process's `Runner` started runs in, by flow name (the latest): the
#: client reads a flow's runs there first. A notebook at a project's root running
#: `flows/train.py` read `Flow("TrainFlow")` from the nearest store upward from its
#: folder: an older store's run, silently, or none (Metaflow's store is the working
#: directory's, where its Runner's run went too).
_STARTED_HERE: dict[str, Path] = {}


def note_runs_started_in(flow_name: str, root: Path) -> None:
    """A run of `flow_name` was started from this process into the store `root`."""
    _STARTED_HERE[flow_name] = root


def find_root(flow_name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where a flow's runs live for the client: the given root, `$FLOWDECK_HOME`, the
    store this process's Runner last ran it in, the nearest `.flowdeck/` upward from the
    working directory (or the script) holding it, or the `.flowdeck/` of a folder beside
    the script's (or, with no script: a notebook, beside the working directory) that
    holds it.

    An object-store URL (given, or `$FLOWDECK_DATASTORE`) gives its local cache
    (`cache_root`), which `store.objectstore.ReadCache` fills.
    """
    if root is not None:
        if is_store_url(str(root)):
            return cache_root(str(root))
        given = Path(root)
        if not (given / flow_name).is_dir() and (given / DEFAULT_DIRNAME / flow_name).is_dir():
            return given / DEFAULT_DIRNAME  # the flow's folder, which holds its store
        return given
    if is_store_url(os.environ.get(DATASTORE_ENV)):
        return cache_root(os.environ[DATASTORE_ENV])
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser()
    started = _STARTED_HERE.get(flow_name)
    if started is not None and (started / flow_name).is_dir():
        return started
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_DIRNAME
        if (candidate / flow_name).is_dir():
            return candidate
    main_file = getattr(__import__("__main__"), "__file__", None)
    script_dir = Path(main_file).resolve().parent if main_file else None
    if script_dir is not None and (script_dir / DEFAULT_DIRNAME / flow_name).is_dir():
        return script_dir / DEFAULT_DIRNAME
    # A project of sibling flow folders (Metaflow's tutorials: 03-x/flow.py reads the runs
    # of 02-y/flow.py; a notebooks/ folder beside flows/): the store of a folder beside the
    # script's (a notebook has none: its working directory's), the latest one if several.
    # A notebook at a project's root reading the runs of `flows/train.py`: the store of a
    # folder inside the working directory, before those beside it (other projects').
    for stores in (_child_stores(here) if script_dir is None else [],
                   _sibling_stores(script_dir or here)):
        holding = [candidate for candidate in stores
                   if (candidate / flow_name / "runs").is_dir()]
        if holding:
            return max(holding, key=lambda c: _mtime(c / flow_name / "runs"))
    return here / DEFAULT_DIRNAME


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _sibling_stores(folder: Path) -> list[Path]:
    """The `.flowdeck/` folders of the folders beside `folder` (not its own)."""
    return [store for store in _child_stores(folder.parent)
            if store.parent != folder]


def _child_stores(folder: Path) -> list[Path]:
    """The `.flowdeck/` folders of the folders inside `folder` (one level down)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return [Path(e.path) / DEFAULT_DIRNAME for e in entries
            if e.is_dir() and not e.name.startswith(".")]


def attempt_file(task_dir: str | os.PathLike[str], attempt: int, kind: str) -> str:
    """Path of an attempt's record ('json') or log ('out', 'err'); a string, for the hot path."""
    return os.path.join(task_dir, f"attempt-{attempt}.{kind}")


def attempts_in(task_dir: str | os.PathLike[str]) -> list[int]:
    """The attempt numbers that have a record in a task folder, in order."""
    found = []
    try:
        names = os.listdir(task_dir)
    except OSError:
        return []
    for name in names:
        if name.startswith("attempt-") and name.endswith(".json"):
            number = name[len("attempt-"):-len(".json")]
            if number.isdigit():
                found.append(int(number))
    return sorted(found)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one flow's runs under one root."""

    root: Path
    flow: str

    @classmethod
    def for_file(cls, flow_file: str | os.PathLike[str], flow: str) -> "RunLayout":
        return cls(default_root(flow_file), flow)

    @property
    def runs_dir(self) -> Path:
        return self.root / check_id("flow name", self.flow) / "runs"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_id("run id", run_id)

    def run_json(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RUN_JSON

    def tags(self, run_id: str) -> Path:
        """Tags changed after the run began (only the orchestrator writes run.json)."""
        return self.run_dir(run_id) / "tags.json"

    def tags_lock(self, run_id: str) -> Path:
        return self.run_dir(run_id) / ".tags.json.lock"

    def events(self, run_id: str) -> Path:
        return self.run_dir(run_id) / EVENTS

    def step_dir(self, run_id: str, step: str) -> Path:
        return self.run_dir(run_id) / check_id("step", step)

    def task_dir(self, run_id: str, step: str, task_id: str) -> Path:
        return self.step_dir(run_id, step) / check_id("task id", str(task_id))

    def attempt(self, run_id: str, step: str, task_id: str, attempt: int, kind: str) -> Path:
        return Path(attempt_file(self.task_dir(run_id, step, task_id), int(attempt), kind))

    def log_paths(self, run_id: str, step: str, task_id: str, attempt: int,
                  origin: str | None = None, origin_attempt: int = 0) -> dict[str, Path]:
        """stdout and stderr of a task attempt; a reused task's are its origin task's."""
        if origin:
            origin_run, origin_step, origin_task = origin.split("/")
            run_id, step, task_id, attempt = origin_run, origin_step, origin_task, origin_attempt
        return {"stdout": self.attempt(run_id, step, task_id, attempt, "out"),
                "stderr": self.attempt(run_id, step, task_id, attempt, "err")}

    def cards_dir(self, run_id: str, step: str, task_id: str) -> Path:
        """The folder of a task's cards (written by the task, read by the client and window)."""
        return self.task_dir(run_id, step, task_id) / CARDS_DIR

    def card_index(self, run_id: str, step: str, task_id: str) -> Path:
        """The task's card list (`flowdeck.cards.index`): one small file the window polls."""
        return self.cards_dir(run_id, step, task_id) / CARD_INDEX

    def card_file(self, run_id: str, step: str, task_id: str, index: int, card_type: str,
                  kind: str = "html") -> Path:
        """One card's HTML (`kind` 'html') or its refresh data ('data'): `<i>-<type>.<ext>`."""
        name = f"{int(index)}-{check_id('card type', card_type)}.{CARD_KINDS[kind]}"
        return self.cards_dir(run_id, step, task_id) / name

    def space_reserve(self, run_id: str) -> Path:
        """A file the orchestrator holds while a run goes and deletes first when it ends, so a
        full disk still leaves room for the run's last records (a crashed run may leave it)."""
        return self.run_dir(run_id) / SPACE_RESERVE

    def headless_log(self, run_id: str) -> Path:
        return self.logs_dir / f"{check_id('run id', run_id)}.log"

    def pin_marker(self, run_id: str) -> Path:
        """The file whose presence pins a run (the garbage collector always keeps it)."""
        return self.run_dir(run_id) / PINNED

    def fetched_marker(self, run_id: str) -> Path:
        """In an object store's working copy: the file whose presence says the run was
        fetched from the store, written before its record (`ReadCache.fetch_runs`)."""
        return self.run_dir(run_id) / FETCHED

    def deleting_dir(self, run_id: str) -> Path:
        """Where a run's folder is renamed before it is removed, so a removal cut short
        leaves no half-deleted run in any listing (the next collection finishes it)."""
        return self.runs_dir / f"{DELETING}{check_id('run id', run_id)}"

    def starting_run_dirs(self) -> list[Path]:
        """Run folders without a run record yet: runs being created (or that died then)."""
        try:
            entries = list(os.scandir(self.runs_dir))
        except OSError:
            return []
        return [Path(e.path) for e in entries if is_id(e.name) and e.is_dir()
                and not os.path.exists(os.path.join(e.path, RUN_JSON))]

    def deletions_left(self) -> list[Path]:
        """Folders of runs whose removal was interrupted."""
        try:
            return [Path(e.path) for e in os.scandir(self.runs_dir)
                    if e.name.startswith(DELETING) and e.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def create_run_dir(self, run_id: str) -> Path:
        """Create a new run's folder; FileExistsError if that run id is taken."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir(run_id)
        path.mkdir()
        return path

    def run_ids(self) -> list[str]:
        """Ids of the folders that hold a run record (any order)."""
        try:
            entries = list(os.scandir(self.runs_dir))
        except OSError:
            return []
        return [e.name for e in entries
                if is_id(e.name) and os.path.exists(os.path.join(e.path, RUN_JSON))]


def flows_in(root: str | os.PathLike[str]) -> list[str]:
    """Names of the flows that have a `runs` folder in a store, sorted."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    return sorted(e.name for e in entries
                  if is_id(e.name) and os.path.isdir(os.path.join(e.path, "runs")))


def headless_logs(root: str | os.PathLike[str]) -> dict[str, Path]:
    """The headless logs of a store by run id (`logs/<run_id>.log`; logs span its flows)."""
    folder = Path(root) / "logs"
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    return {name[:-len(".log")]: folder / name for name in names
            if name.endswith(".log") and is_id(name[:-len(".log")])}


def settings_file(root: str | os.PathLike[str]) -> Path:
    """A store's settings (JSON object; `keep_runs`: how many runs per flow to keep)."""
    return Path(root) / SETTINGS


def looks_like_store(path: str | os.PathLike[str]) -> bool:
    """True for a `.flowdeck` folder, or a folder holding blobs and flows' runs (a $FLOWDECK_HOME).

    Strict on purpose: the garbage collector deletes runs in what this accepts.
    """
    folder = Path(path)
    if not folder.is_dir():
        return False
    return folder.name == DEFAULT_DIRNAME or ((folder / "blobs").is_dir() and bool(flows_in(folder)))
