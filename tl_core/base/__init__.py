"""The ground floor, no torch: atomic writes, messages (EN/ES kinds), run status, events, the config."""
from tl_core.base.atomic import read_json, write_bytes_atomic, write_json_atomic  # noqa: F401
from tl_core.base.config import RunConfig  # noqa: F401
from tl_core.base.events import TERMINAL, EpochEnd, Failed, Finished, Note, Progress, Started, Stopped  # noqa: F401
from tl_core.base.formatting import duration  # noqa: F401
from tl_core.base.messages import ConfigError, DataError, Message, UserError, render  # noqa: F401
from tl_core.base.status import RunStatus  # noqa: F401
