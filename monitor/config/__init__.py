"""Configuration: strict YAML files in, frozen validated models out.

Every config file is read with ruamel.yaml, which keeps the line and column of each key and value,
and validated by a strict pydantic model (unknown keys are errors, no silent type coercion). Every
problem in a file is reported at once as a `ConfigIssue` ("file:line:column: key.path: message");
`ConfigError` carries them all. `load_yaml_model` is the generic entry point that later config files
(actors, watches, channels) reuse; `load_config` reads `monitor.yaml` and `feeds.yaml`;
`load_rules` reads `actors.yaml`, `watches.yaml` and `channels.yaml` into a `RuleSet`.

String values may use `${NAME}` or `${NAME:-default}` (write `$${` for a literal `${`). The value of
an environment variable never appears in an error message: where a value came from the
environment, messages quote what the file says (`'${DB_PASSWORD}'`) instead.

Modules, each importing only those before it:
- `errors`: ConfigIssue, ConfigError, Problem, and the wording of messages.
- `fields`: field types (durations, sizes, URLs, names, tags) and StrictModel.
- `loader`: YAML with positions, `${ENV}` substitution, `load_yaml_model`.
- `models`: monitor.yaml (Settings), feeds.yaml (FeedsFile), `load_config`.
- `rules`: actors.yaml (ActorsFile), watches.yaml (WatchesFile), channels.yaml (ChannelsFile),
  `load_rules`.
"""

from monitor.config.errors import ConfigError, ConfigIssue, Loc, Problem
from monitor.config.fields import (
    Duration,
    HttpUrl,
    PositiveDuration,
    Size,
    StrictModel,
    duration_text,
    parse_duration,
    parse_size,
    size_text,
)
from monitor.config.loader import load_yaml_model
from monitor.config.models import (
    FEEDS_FILE,
    MONITOR_FILE,
    Config,
    DedupeSettings,
    DeliverySettings,
    ExtractSettings,
    FeedConfig,
    FeedsFile,
    FeedSpec,
    LoggingSettings,
    MetricsSettings,
    OutletConfig,
    PollingSettings,
    RetentionSettings,
    Settings,
    load_config,
)
from monitor.config.rules import (
    ACTORS_FILE,
    CHANNELS_FILE,
    WATCHES_FILE,
    ActorConfig,
    ActorsFile,
    AliasConfig,
    ChannelConfig,
    ChannelsFile,
    WatchConfig,
    WatchesFile,
    Weights,
    keyword_leaf,
    load_rules,
    watch_expr,
)

__all__ = [
    "ACTORS_FILE",
    "CHANNELS_FILE",
    "FEEDS_FILE",
    "MONITOR_FILE",
    "WATCHES_FILE",
    "ActorConfig",
    "ActorsFile",
    "AliasConfig",
    "ChannelConfig",
    "ChannelsFile",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DeliverySettings",
    "Duration",
    "ExtractSettings",
    "FeedConfig",
    "FeedSpec",
    "FeedsFile",
    "HttpUrl",
    "Loc",
    "LoggingSettings",
    "MetricsSettings",
    "OutletConfig",
    "PollingSettings",
    "PositiveDuration",
    "Problem",
    "DedupeSettings",
    "RetentionSettings",
    "Settings",
    "Size",
    "StrictModel",
    "WatchConfig",
    "WatchesFile",
    "Weights",
    "duration_text",
    "keyword_leaf",
    "load_config",
    "load_rules",
    "load_yaml_model",
    "parse_duration",
    "parse_size",
    "size_text",
    "watch_expr",
]
