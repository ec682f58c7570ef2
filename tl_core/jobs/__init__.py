"""Running work for people: run folders, the job queue and its runners, heavy page tasks in its slots,
sessions, settings, comparisons."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "JobManager": "job", "make_runner": "runners", "ProcessJob": "process", "run_here": "process",
    "list_runs": "runs", "read_events": "runs", "load_settings": "settings", "Settings": "settings",
    "CompareGroup": "compare", "TaskRunner": "tasks", "make_tasks": "tasks",
    "check_runs": "run_check",
})
