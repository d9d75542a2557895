"""The templates security mail is written from (Jinja2, sandboxed): for each kind of mail a subject,
a plain-text part and an HTML part, packaged under ``server/mail/templates/``; an operator's folder
may replace any of them by a file of the same name.

Every template is loaded and rendered with sample values when the service starts, so a broken
replacement stops the start with a message naming its file instead of failing a mail later.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe
from jinja2.sandbox import SandboxedEnvironment

PACKAGED_DIR = Path(__file__).with_name("templates")

# Each kind of mail, and what its templates may use beyond what every mail has
# (product, name, link, expires; and subject in the text and HTML parts).
MAIL_KINDS: Mapping[str, tuple[str, ...]] = {
    "password_reset": (),
    "lock_notice": ("locked_at",),
    "verification": ("code",),
    "email_change": (),
    "email_change_notice": (),
    # A notice without a link (nor a secret): "factor" names the kind, "change" is "added" or
    # "removed"; "link" and "expires" are empty.
    "second_factor_notice": ("factor", "change"),
}
# The kinds whose mail carries no link.
LINKLESS_KINDS = frozenset({"second_factor_notice"})
LAYOUTS = ("base.txt", "base.html")
PARTS = ("subject.txt", "txt", "html")
# What both parts of a mail must show, beyond the link, for the mail to serve its purpose.
REQUIRED_EXTRAS: Mapping[str, tuple[str, ...]] = {"verification": ("code",)}
TEMPLATE_NAMES = frozenset([*LAYOUTS, *(f"{kind}.{part}" for kind in MAIL_KINDS for part in PARTS)])

_SAMPLE_LINK = "https://accounts.example.com/page?a=1&token=SAMPLE-TOKEN"
_SAMPLE_VALUES = {
    "product": "Sample & Co",
    "link": _SAMPLE_LINK,
    "expires": "2026-11-26 05:15 UTC",
    "locked_at": "2026-11-26 04:15 UTC",
    "code": "042917",
    "factor": "an authenticator app",
    "change": "added",
}


class MailTemplateError(ValueError):
    """A mail template cannot be loaded or rendered; the message names its file."""


@dataclass(frozen=True, repr=False)
class RenderedMail:
    """One mail as its templates wrote it: a one-line subject, the plain text and the HTML."""

    subject: str
    text: str
    html: str

    def __repr__(self) -> str:  # the parts hold a live link
        return f"RenderedMail(subject={self.subject!r})"


class MailTemplates:
    """The templates of every kind of mail: the packaged ones, or an operator's replacements."""

    def __init__(self, override_dir: Path | None = None) -> None:
        """Load and try out every template; raise MailTemplateError naming the file at fault."""
        self._sources = _template_files(override_dir)
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(PACKAGED_DIR)]
        if override_dir is not None:
            loaders.insert(0, jinja2.FileSystemLoader(override_dir))
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            # HTML parts escape every value; the subject and the text part are not HTML.
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        for name in sorted(TEMPLATE_NAMES):
            self._load(name)
        self._try_out()

    def __repr__(self) -> str:
        replaced = sorted(
            name for name, path in self._sources.items() if path.parent != PACKAGED_DIR
        )
        return f"MailTemplates(replaced={replaced!r})"

    def render(self, kind: str, values: Mapping[str, str]) -> RenderedMail:
        """The subject, text and HTML of a ``kind`` mail with ``values`` put in."""
        subject = " ".join(self._load(f"{kind}.subject.txt").render(values).split())
        context = {**values, "subject": subject}
        text = self._load(f"{kind}.txt").render(context)
        rich = self._load(f"{kind}.html").render(context)
        return RenderedMail(subject=subject, text=text, html=rich)

    def _load(self, name: str) -> jinja2.Template:
        try:
            return self._env.get_template(name)
        except jinja2.TemplateSyntaxError as error:
            where = error.filename or str(self._sources[name])
            raise MailTemplateError(
                f"mail template {where}, line {error.lineno}: {error.message}"
            ) from None
        except (OSError, UnicodeDecodeError, jinja2.TemplateError) as error:
            raise MailTemplateError(
                f"mail template {self._sources[name]} cannot be loaded: {_reason(error)}"
            ) from None

    def _try_out(self) -> None:
        """Render each kind with sample values (with and without a name) and check that what a
        mail must carry (the link; the code of a verification) is in both parts."""
        for kind in MAIL_KINDS:
            for name in ("Ada", ""):
                values = {"name": name, **_SAMPLE_VALUES}
                try:
                    rendered = self.render(kind, values)
                except Exception as error:  # a template's own arithmetic may fail too
                    raise MailTemplateError(
                        f"mail template {self._file_at_fault(error, kind)} does not render: "
                        f"{_reason(error)}"
                    ) from None
                needed = ({} if kind in LINKLESS_KINDS else {"link": _SAMPLE_LINK}) | {
                    extra: values[extra] for extra in REQUIRED_EXTRAS.get(kind, ())
                }
                self._check_carries(kind, rendered, needed)

    def _check_carries(self, kind: str, rendered: RenderedMail, needed: Mapping[str, str]) -> None:
        if not rendered.subject:
            raise MailTemplateError(
                f"mail template {self._sources[kind + '.subject.txt']} is empty"
            )
        for part, content, escape in (("txt", rendered.text, str), ("html", rendered.html, _attr)):
            for what, value in needed.items():
                if escape(value) not in content:
                    raise MailTemplateError(
                        f"mail template {self._sources[f'{kind}.{part}']} leaves out a value the "
                        f"mail needs: the {what}"
                    )

    def _file_at_fault(self, error: BaseException, kind: str) -> str:
        """The template file whose line raised ``error`` (Jinja puts template lines in the
        traceback), or else the mail's own files."""
        files = {str(path) for path in self._sources.values()}
        at_fault = [
            frame.filename
            for frame in traceback.extract_tb(error.__traceback__)
            if frame.filename in files
        ]
        if at_fault:
            return at_fault[-1]
        return " or ".join(str(self._sources[f"{kind}.{part}"]) for part in PARTS)


def _template_files(override_dir: Path | None) -> dict[str, Path]:
    """Which file each template comes from; refuses a folder that is missing or holds a file
    that replaces nothing (a misspelt name would otherwise be silently ignored)."""
    sources = {name: PACKAGED_DIR / name for name in TEMPLATE_NAMES}
    if override_dir is None:
        return sources
    if not override_dir.is_dir():
        raise MailTemplateError(f"mail template folder {override_dir} is not a folder")
    for path in sorted(override_dir.iterdir()):
        if path.name.startswith("."):  # editors' and Kubernetes' (..data) bookkeeping
            continue
        if path.name not in TEMPLATE_NAMES or not path.is_file():
            raise MailTemplateError(
                f"mail template {path} replaces no template; the names are: "
                + ", ".join(sorted(TEMPLATE_NAMES))
            )
        sources[path.name] = path
    return sources


def _attr(value: str) -> str:
    return str(markupsafe.escape(value))


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"
