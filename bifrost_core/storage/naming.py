"""Per-project naming rules: which shot or asset, task and variant a delivered file is for.

A project's configuration lists rules, tried in order; the first that matches the path
(relative to the scanned folder, POSIX separators) wins. A rule is either

- a template: ``{sequence}/{shot}/{task}/{name}.{frame}.{ext}``, where ``{field}``
  matches one value (``{field:regex}`` to say how), ``*`` anything inside one folder
  name and a leading ``**/`` any number of leading folders; or
- a regular expression with named groups, matched against the whole path.

Rules come from users, so they run on RE2, an engine whose matching time is linear in the
path whatever the pattern (``(x+x+)+y`` costs what ``x+y`` does); what RE2 cannot do in
linear time (backreferences, lookahead and lookbehind) is refused when the rule is built.
Paths longer than MAX_PATH characters match no rule.

Fields: `episode`, `sequence`, `shot`, `asset`, `task`, `variant`, and, captured for the
caller, `name`, `frame`, `ext`, `version`. A rule must identify either a shot (`sequence`
and `shot`) or an `asset`, and a `task`; fields it cannot capture may come from its
`defaults` (config form ``{"template": ..., "defaults": {"task": "plate"}}`` or
``{"regex": ...}``; a bare string is a template, or a regex if it has ``(?P<`` groups).
`variant` defaults to ``main``. Entity values must be valid codes (letters, digits,
``_ . -``); a path whose values are not is left unmatched. Rules are checked when built:
a bad rule raises NamingRuleError saying which and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import re2

from bifrost_core.storage.errors import NamingRuleError
from bifrost_core.storage.scan import ScanItem

ENTITY_FIELDS = ("episode", "sequence", "shot", "asset", "task", "variant")
FIELDS = (*ENTITY_FIELDS, "name", "frame", "ext", "version")
DEFAULT_VARIANT = "main"

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELD_PATTERNS = {
    "frame": r"-?\d+",
    "version": r"\d+",
    "ext": r"[A-Za-z][A-Za-z0-9_.]*",
    "name": r"[^/]+?",
}
_CODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*?"
# Bounds one rule's compiled program and its matching cache (RE2's default is 8 MiB):
# ample for any naming rule, and a project with many rules stays small.
REGEX_MAX_MEM = 1 << 20
# No filesystem path is longer (Linux's PATH_MAX); matching cost stays bounded by it.
MAX_PATH = 4096
# Where RE2 refuses a pattern for one of these, say why rather than quote its parser.
_NEEDS_BACKTRACKING = re.compile(r"\(\?<?[=!]|\(\?P=|\\[1-9]|\\g<|\(\?>|\(\?\(|[*+?}][+]")


@dataclass(frozen=True, slots=True)
class NamingMatch:
    """What a path is for. `entity` says whether `sequence`/`shot` or `asset` is set;
    `fields` holds every value captured or defaulted (including name, frame, ext)."""

    rule: int
    entity: Literal["shot", "asset"]
    task: str
    variant: str
    sequence: str | None = None
    shot: str | None = None
    asset: str | None = None
    episode: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NamingRule:
    """One compiled rule: the source text, its regex, its defaults, and the name of each
    capturing group by position (None for an unnamed one)."""

    source: str
    regex: Any  # a compiled RE2 pattern (re2 ships no type hints)
    defaults: Mapping[str, str]
    groups: tuple[str | None, ...]


@dataclass(frozen=True)
class NamingReport:
    """Scan items sorted by whether a rule matched them."""

    matched: list[tuple[ScanItem, NamingMatch]]
    unmatched: list[ScanItem]


class NamingRules:
    """The ordered naming rules of one project; see the module docstring."""

    def __init__(self, rules: Sequence[str | Mapping[str, Any]]) -> None:
        if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
            raise NamingRuleError("naming rules must be a list of templates or regular expressions")
        self.rules = [_compile(i, spec) for i, spec in enumerate(rules, 1)]

    def match(self, rel_path: str) -> NamingMatch | None:
        """The match of the first rule that fits `rel_path`, or None."""
        if len(rel_path) > MAX_PATH:
            return None
        try:
            # Bytes in, bytes out: re2's str interface maps every offset back to characters,
            # and its groupdict() builds the group table anew (4x the time of the match).
            encoded = rel_path.encode()
        except UnicodeEncodeError:  # a name that is not UTF-8: no code can come of it
            return None
        for index, rule in enumerate(self.rules, 1):
            m = rule.regex.fullmatch(encoded)
            if m is None:
                continue
            captured = zip(rule.groups, m.groups(), strict=True)
            values = {**rule.defaults, **{k: v.decode() for k, v in captured if k and v is not None}}
            if all(_CODE.fullmatch(values[k]) for k in ENTITY_FIELDS if k in values):
                return _result(index, values)
        return None

    def match_items(self, items: Iterable[ScanItem]) -> NamingReport:
        """Match scan items by their first file's path (a sequence's first frame)."""
        report = NamingReport([], [])
        for item in items:
            found = self.match(item.files[0].rel)
            if found is None:
                report.unmatched.append(item)
            else:
                report.matched.append((item, found))
        return report


def _result(index: int, values: dict[str, str]) -> NamingMatch:
    values.setdefault("variant", DEFAULT_VARIANT)
    return NamingMatch(
        rule=index,
        entity="asset" if "asset" in values else "shot",
        task=values["task"],
        variant=values["variant"],
        sequence=values.get("sequence"),
        shot=values.get("shot"),
        asset=values.get("asset"),
        episode=values.get("episode"),
        fields=values,
    )


def _compile(index: int, spec: str | Mapping[str, Any]) -> NamingRule:
    if isinstance(spec, str):
        kind = "regex" if "(?P<" in spec else "template"
        source, defaults = spec, {}
    elif isinstance(spec, Mapping):
        kinds = [k for k in ("template", "regex") if k in spec]
        unknown = set(spec) - {"template", "regex", "defaults"}
        if len(kinds) != 1 or unknown:
            raise NamingRuleError(
                f"naming rule {index}: give exactly one of 'template' or 'regex' (and optional 'defaults')"
            )
        kind, source, defaults = kinds[0], spec[kinds[0]], spec.get("defaults") or {}
    else:
        raise NamingRuleError(
            f"naming rule {index}: expected a string or a mapping, got {type(spec).__name__}"
        )
    if not isinstance(source, str) or not source:
        raise NamingRuleError(f"naming rule {index}: the {kind} must be a non-empty string")
    where = f"naming rule {index} ({source!r})"
    regex_text = _template_regex(source, where) if kind == "template" else source
    regex = compile_regex(regex_text, where)
    groups = set(regex.groupindex)
    _check_fields(groups, defaults, where)
    names: list[str | None] = [None] * regex.groups
    for name, position in regex.groupindex.items():
        names[position - 1] = name
    return NamingRule(source, regex, dict(defaults), tuple(names))


def compile_regex(pattern: str, where: str) -> Any:
    """`pattern` compiled by RE2 (linear-time matching, memory bounded by REGEX_MAX_MEM), or
    NamingRuleError naming `where` and why."""
    options = re2.Options()
    options.max_mem = REGEX_MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        if _NEEDS_BACKTRACKING.search(pattern):
            raise NamingRuleError(
                f"{where}: backreferences, lookahead/lookbehind, atomic groups and possessive "
                f"repeats are not supported: rules are matched in linear time by RE2 ({reason})"
            ) from None
        raise NamingRuleError(f"{where}: invalid regular expression: {reason}") from None


def _check_fields(groups: set[str], defaults: Any, where: str) -> None:
    if not isinstance(defaults, Mapping):
        raise NamingRuleError(f"{where}: 'defaults' must be a mapping of field to value")
    unknown = sorted((groups | set(defaults)) - set(FIELDS))
    if unknown:
        raise NamingRuleError(f"{where}: unknown field {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    for key, value in defaults.items():
        if not isinstance(value, str) or (key in ENTITY_FIELDS and not _CODE.fullmatch(value)):
            raise NamingRuleError(f"{where}: default {key}={value!r} is not a valid code")
    has = groups | set(defaults)
    if "asset" in has and ("shot" in has or "sequence" in has):
        raise NamingRuleError(f"{where}: a rule names either an asset or a sequence and shot, not both")
    if "asset" not in has and not {"sequence", "shot"} <= has:
        raise NamingRuleError(
            f"{where}: needs {{sequence}} and {{shot}}, or {{asset}} (or defaults for them)"
        )
    if "task" not in has:
        raise NamingRuleError(f"{where}: needs a {{task}} field or a default task")


def _template_regex(template: str, where: str) -> str:
    """Translate a template to a regex: fields become named groups, the rest is literal
    except ``*`` and a leading ``**/``."""
    out: list[str] = []
    seen: set[str] = set()
    rest = template
    if rest.startswith("**/"):
        out.append(r"(?:[^/]+/)*")
        rest = rest[3:]
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == "{":
            name, pattern, i = _read_field(rest, i, where)
            if name in seen:
                raise NamingRuleError(f"{where}: field {{{name}}} appears twice")
            seen.add(name)
            default = _FIELD_PATTERNS.get(name, _CODE_PATTERN)
            out.append(f"(?P<{name}>{pattern or default})")
            continue
        if char == "}":
            raise NamingRuleError(f"{where}: unmatched '}}'")
        out.append("[^/]*" if char == "*" else re2.escape(char))
        i += 1
    return "".join(out)


def _read_field(text: str, start: int, where: str) -> tuple[str, str, int]:
    """Parse ``{name}`` or ``{name:regex}`` (braces inside the regex must balance) at
    `start`; returns the name, the regex (or "") and the index after the field."""
    depth = 0
    for end in range(start, len(text)):
        if text[end] == "{" and (end == start or text[end - 1] != "\\"):
            depth += 1
        elif text[end] == "}" and text[end - 1] != "\\":
            depth -= 1
            if depth == 0:
                name, _, pattern = text[start + 1 : end].partition(":")
                if not re.fullmatch(r"[a-z_]+", name):
                    raise NamingRuleError(f"{where}: bad field {text[start : end + 1]!r}")
                return name, pattern, end + 1
    raise NamingRuleError(f"{where}: unclosed '{{'")
