"""Find secrets in a file's text and blank them out before anything is stored or embedded.

A code search index must not become a second copy of the keys and passwords checked into a
repository, nor send them to a remote embedding provider. So every file's text passes
through ``redact`` before it is chunked: chunks, the BM25 text and the embedded text are all
made from the redacted text. A secret's span is replaced by ``[REDACTED:<kind>]`` followed by
as many newlines as the span held, so every line keeps its number.

The detectors are Yelp's detect-secrets plugins (Apache-2.0). Their compiled patterns run
once over a file's whole text and the plugin's own ``analyze_string`` confirms each match;
the keyword rules run only on lines holding a hint word. The library's line-by-line
scanner costs about 30 times as much (docs/BENCHMARKS.md). Written here are only what the
library does not give: the extent of a PEM private key (the plugin flags its first line
only), GitHub fine-grained tokens (``github_pat_``), Google API keys (``AIza``), an AWS
secret access key next to its key id, and assignments to names with ``token`` in them.
Keyword assignments are redacted only when the value looks random, so that
``password = "Enter your password"`` stays searchable.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from re import Pattern

import attrs
from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.aws import AWSKeyDetector, get_secret_access_keys
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.util.code_snippet import CodeSnippet
from detect_secrets.util.filetype import FileType, determine_file_type

# Part of the index's identity: a new value re-reads every file of existing indexes, so that
# chunks stored under older rules (or before there was redaction) do not keep a secret.
RULES_VERSION = "1"

# Plugins whose every match is a secret. Left out: public IPs (not secrets), the generic
# Base64/Hex high-entropy plugins (hashes and test vectors in ordinary code), Artifactory
# (any all-caps word starting with "AP" matches) and the IBM/Cloudant/SoftLayer keyword rules.
_PLUGINS: tuple[RegexBasedDetector, ...] = (
    AWSKeyDetector(), AzureStorageKeyDetector(), BasicAuthDetector(), DiscordBotTokenDetector(),
    GitHubTokenDetector(), GitLabTokenDetector(), JwtTokenDetector(), MailchimpDetector(), NpmDetector(),
    OpenAIDetector(), PypiTokenDetector(), SendGridDetector(), SlackDetector(), SquareOAuthDetector(),
    StripeDetector(), TelegramBotTokenDetector(), TwilioKeyDetector(),
)

# Our own patterns for what the library lacks, as (kind, pattern) pairs.
_EXTRA: tuple[tuple[str, Pattern[str]], ...] = (
    ("GitHub Token", re.compile(r"github_pat_[A-Za-z0-9_]{22,255}")),
    ("Google API Key", re.compile(r"AIza[0-9A-Za-z_\-]{35}")),
)

# The whole of a PEM private key: header, body, footer. The body alone is replaced.
_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")
_PEM_MAX_CHARS = 64 * 1024
# Without a footer, the body is what follows the header on its line (a key written with \n
# escapes) and the lines after it that look like base64 or PGP armour headers.
_PEM_REST_OF_LINE = re.compile(r"[A-Za-z0-9+/=\\]*")
_PEM_BODY_LINE = re.compile(r"[ \t]*[\"']?(?:[A-Za-z0-9+/=]{16,}|(?:Version|Comment|Proc-Type|DEK-Info):.*|)"
                            r"[\"']?[,;+]?[ \t]*(?:\n|$)")

# detect-secrets' keyword rules, with names holding "token" and "access key" added to its list.
_NAMES = "|".join((*keyword.DENYLIST, r"[a-z_]*token", r"access_?key", r"auth"))
_DENYLIST_REGEX = rf"({_NAMES})\w*"


def _with_names(rules: dict[Pattern[str], int]) -> dict[Pattern[str], int]:
    """The library's keyword regexes with our longer list of names (same groups)."""
    return {re.compile(p.pattern.replace(keyword.DENYLIST_REGEX, _DENYLIST_REGEX), p.flags): g
            for p, g in rules.items()}


_KEYWORD_RULES: dict[FileType | None, dict[Pattern[str], int]] = {
    t: _with_names(r) for t, r in keyword.REGEX_BY_FILETYPE.items()}
_KEYWORD_RULES[None] = _with_names(keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
# Cheap test for a line worth trying the keyword rules on (lower-cased text).
_KEYWORD_HINTS = ("key", "pass", "pwd", "secret", "token", "auth", "contras")

# A token matched by a fixed-length pattern (Stripe's 24 characters) may go on: redact the rest.
_TAIL = re.compile(r"[A-Za-z0-9_\-]*")
_JWT_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]*")  # the library's pattern stops before the signature
_AWS_KEY_IDS = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
# Lines either side of an AWS key id searched for its secret access key.
AWS_SECRET_LINES = 5

# A keyword value is redacted when it looks random: long enough, no spaces, varied characters.
MIN_KEYWORD_SECRET = 8
MIN_KEYWORD_ENTROPY = 3.0
# Templates and format strings, URLs, all-caps or lower-case names, words joined by - _ . / : @,
# snake_case or dotted names with digits, calls.
_NOT_SECRET = re.compile(r"[{}$<>%]|\.\.\.|://|^urn:|^\[REDACTED:|^[A-Z_]+$|^[a-z_./-]+$"
                         r"|^[A-Za-z][a-z]*(?:[-_./:@ ]?[A-Z]?[a-z]+)*$|^[a-z][a-z0-9]*(?:[_.][a-z0-9]+)+$"
                         r"|^[A-Za-z_][\w.]*\(.*\)$")
# What documentation writes where a password goes: https://user:password@host, ACxxxxxxxx.
_PLACEHOLDER = re.compile(r"^[<{\[$%*]|^(?:pass(?:word)?|passwd|pwd|secret|changeme|example|test)$", re.I)
# Tokens a pattern found must look random: this rules out ACxxxxxxxx and the like.
MIN_TOKEN_ENTROPY = 2.5
# A value this long, once found, is redacted wherever else it occurs in the file too.
MIN_REPEATED_SECRET = 12


@attrs.frozen
class Finding:
    """A secret found: what kind, where (offsets into the text) and on which lines (1-based)."""

    kind: str
    start: int
    end: int
    first_line: int
    last_line: int

    def describe(self) -> str:
        lines = (f"line {self.first_line}" if self.first_line == self.last_line
                 else f"lines {self.first_line}-{self.last_line}")
        return f"{self.kind} ({lines})"


@attrs.frozen
class Redacted:
    text: str
    findings: tuple[Finding, ...] = ()

    @property
    def count(self) -> int:
        return len(self.findings)

    def reason(self, most: int = 20) -> str:
        """What was redacted and where, never the secret itself; the first `most` findings."""
        listed = ", ".join(f.describe() for f in self.findings[:most])
        return listed + (f" and {len(self.findings) - most} more" if len(self.findings) > most else "")


def placeholder(kind: str) -> str:
    return "[REDACTED:" + kind.lower().replace(" ", "-") + "]"


def shannon_entropy(value: str) -> float:
    """Bits per character of value."""
    if not value:
        return 0.0
    counts = {c: value.count(c) for c in set(value)}
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_random(value: str) -> bool:
    """Whether a value assigned to a secret-sounding name is likely a real secret, not a
    placeholder, template, identifier or prose."""
    return (len(value) >= MIN_KEYWORD_SECRET and not any(c.isspace() for c in value)
            and shannon_entropy(value) >= MIN_KEYWORD_ENTROPY and not _NOT_SECRET.search(value)
            and not heuristic.is_sequential_string(value) and not heuristic.is_potential_uuid(value)
            and not heuristic.is_not_alphanumeric_string(value))


def redact(text: str, path: str = "") -> Redacted:
    """text with every secret found replaced; line count and line numbers unchanged."""
    findings = find_secrets(text, path)
    if not findings:
        return Redacted(text)
    out: list[str] = []
    pos = 0
    for f in findings:
        out.append(text[pos:f.start])
        out.append(placeholder(f.kind) + "\n" * text.count("\n", f.start, f.end))
        pos = f.end
    out.append(text[pos:])
    return Redacted("".join(out), tuple(findings))


def redact_lines(lines: list[str], path: str = "") -> list[str]:
    """Lines (each with its line end) with secrets replaced, as many as given: for callers that
    address them by number. The whole text is scanned, so a key body is found with its header."""
    found = redact("".join(lines), path)
    if not found.findings:
        return lines
    out = found.text.splitlines(keepends=True)
    if len(out) == len(lines):
        return out
    return [redact(line, path).text for line in lines]  # a span held a \r or other line break


def find_secrets(text: str, path: str = "") -> list[Finding]:
    """Non-overlapping secret spans in text, in order. path picks the keyword rules by extension."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    lines = text.split("\n")
    spans: list[tuple[int, int, str]] = list(_pem_spans(text))
    values: dict[str, str] = {}  # secret value -> kind: every occurrence in the file goes

    def found(start: int, end: int, kind: str) -> None:
        spans.append((start, end, kind))
        if end - start >= MIN_REPEATED_SECRET:
            values.setdefault(text[start:end], kind)

    for plugin in _PLUGINS:
        for pattern in plugin.denylist:
            for m in pattern.finditer(text):
                start, end = _secret_span(m)
                value = text[start:end]
                # The plugin has the last word (the JWT one checks that the parts decode).
                if (len(value) < 6 or _PLACEHOLDER.search(value) or shannon_entropy(value) < MIN_TOKEN_ENTROPY
                        or not any(True for _ in plugin.analyze_string(m.group()))):
                    continue
                tail = _JWT_TAIL if plugin.secret_type == "JSON Web Token" else _TAIL
                if (start, end) == m.span() and (more := tail.match(text, end)) is not None:
                    end = more.end()
                aws_secret = plugin.secret_type == "AWS Access Key" and not text.startswith(_AWS_KEY_IDS, start)
                found(start, end, "AWS Secret Access Key" if aws_secret else plugin.secret_type)
                if plugin.secret_type == "AWS Access Key" and text.startswith(_AWS_KEY_IDS, start):
                    number = bisect.bisect_right(starts, start) - 1
                    near = CodeSnippet(lines[max(0, number - AWS_SECRET_LINES):number + AWS_SECRET_LINES + 1], 0, 0)
                    for candidate in get_secret_access_keys(near):
                        if shannon_entropy(candidate) >= MIN_KEYWORD_ENTROPY:
                            values.setdefault(candidate, "AWS Secret Access Key")
    for kind, pattern in _EXTRA:
        for m in pattern.finditer(text):
            if shannon_entropy(m.group()) >= MIN_TOKEN_ENTROPY:
                found(*m.span(), kind)

    rules = _KEYWORD_RULES.get(determine_file_type(path), _KEYWORD_RULES[None])
    lowered = text.lower()
    hinted = (_lines_with(lowered, starts, _KEYWORD_HINTS) if len(lowered) == len(text) else
              [i for i, line in enumerate(lines) if any(w in line.lower() for w in _KEYWORD_HINTS)])
    for number in hinted:
        for pattern, group in rules.items():
            for m in pattern.finditer(lines[number]):
                if m.group(group) and looks_random(m.group(group)):
                    found(starts[number] + m.start(group), starts[number] + m.end(group), "Secret Keyword")

    for value, kind in values.items():
        at = text.find(value)
        while at >= 0:
            spans.append((at, at + len(value), kind))
            at = text.find(value, at + len(value))
    return _merge(spans, starts)


def _secret_span(m: re.Match[str]) -> tuple[int, int]:
    """The secret in a plugin's match: its first group (a password in a URL, a value after its
    name), unless that group is a short prefix (GitHub's `ghp`); else the whole match."""
    for i in range(1, (m.re.groups or 0) + 1):
        if m.group(i) and (m.start(i) > m.start() or len(m.group(i)) >= 8):
            return m.span(i)
    return m.span()


def _lines_with(lowered: str, starts: list[int], words: Iterable[str]) -> list[int]:
    """0-based numbers of the lines holding any of words, found with str.find (fast)."""
    found: set[int] = set()
    for word in words:
        at = lowered.find(word)
        while at >= 0:
            number = bisect.bisect_right(starts, at) - 1
            found.add(number)
            # On to the next line: one hit per line is enough.
            at = lowered.find(word, starts[number + 1] if number + 1 < len(starts) else len(lowered))
    return sorted(found)


def _pem_spans(text: str) -> Iterable[tuple[int, int, str]]:
    """The body of each PEM private key, from after its header to before its footer."""
    pos = 0
    while (m := _PEM_BEGIN.search(text, pos)) is not None:
        end = text.find(f"-----END {m.group(1)}-----", m.end(), m.end() + _PEM_MAX_CHARS)
        if end < 0:
            rest = _PEM_REST_OF_LINE.match(text, m.end())
            end = rest.end() if rest is not None else m.end()
            if end < len(text) and text[end] == "\n":
                end += 1
                while end < len(text) and (body := _PEM_BODY_LINE.match(text, end)) and body.end() > end:
                    end = body.end()
                end = end - 1 if text[end - 1] == "\n" else end  # the last line's newline stays
        key_text = text[m.end():end].replace("\\n", "").strip()
        if key_text and key_text != placeholder("Private Key"):  # not redacted already
            yield m.end(), end, "Private Key"
        pos = max(end, m.end())


def _merge(spans: list[tuple[int, int, str]], starts: list[int]) -> list[Finding]:
    """Overlapping spans become one, named after the one starting first (a named kind before
    a keyword match)."""
    merged: list[list] = []
    for start, end, kind in sorted(spans, key=lambda s: (s[0], s[2] == "Secret Keyword", -s[1])):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    return [Finding(kind, start, end, bisect.bisect_right(starts, start),
                    bisect.bisect_right(starts, max(start, end - 1)))
            for start, end, kind in merged]
