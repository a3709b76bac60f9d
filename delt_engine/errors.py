"""Error hierarchy: every error a user can cause is a DeltError with a message that says the fix."""


class DeltError(Exception):
    """Base class for errors the user can act on (pages show these with st.error)."""


class ConfigError(DeltError, ValueError):
    """A configuration value is out of range or inconsistent."""


class DataError(DeltError, ValueError):
    """Input data is malformed, empty, or missing a required field."""


class JobError(DeltError, RuntimeError):
    """A background job failed, was cancelled, or cannot be started."""


class Cancelled(DeltError):
    """Long work stopped because its stop flag was set; partial results are not final."""
