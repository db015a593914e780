"""Login forms in HTML: which form holds the password, which field is the username, what a submit sends,
and whether a page asks for a one-time code. Parsing only; nothing here touches the network.

A page comes from a server that may be hostile, so parsing is bounded: a page is fed to the parser in slices with
the deadline checked between them, and the parser's end-of-page pass (quadratic in Python 3.11 on a page of
unclosed tags) is never run: what an unfinished tag at the very end would have held is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from preflight.deadline import Deadline
from preflight.profiles import LoginPage

# Characters fed to the parser at a time: small enough that one slice's work stays well under a second.
_FEED_CHARS = 32 * 1024
# Forms kept per page. A form counts once it has a named input (an empty one cannot be a login form); a page with
# more is not a login page a person could use, and keeping them all would let a page decide our memory.
MAX_FORMS = 1000
# <meta> tags and <label for=...> texts kept per page, for the same reason.
_MAX_METAS = 1000
_MAX_LABELS = 10_000

_USERNAME_HINTS = ("user", "login", "email", "name")
# Words that name a one-time-code field: otp_code, twoFactorToken, "Verification code", autocomplete=one-time-code.
_SECOND_FACTOR_WORDS = frozenset(
    {"otp", "totp", "hotp", "2fa", "mfa", "tfa", "code", "passcode", "token", "verification", "authenticator"}
)
_TEXT_INPUT_TYPES = frozenset({"text", "email", "number", "tel", "search", "url"})
_NEVER_SUBMITTED_TYPES = frozenset({"submit", "button", "image", "reset", "file"})
_CHECKED_TYPES = frozenset({"checkbox", "radio"})


@dataclass
class FormInput:
    name: str
    kind: str
    value: str = ""
    checked: bool = False
    element_id: str = ""
    # autocomplete, placeholder, aria-label and label text: what a person (or a browser) reads about the field.
    hints: list[str] = field(default_factory=list)

    @property
    def visible_text(self) -> bool:
        return self.kind in _TEXT_INPUT_TYPES


@dataclass
class LoginForm:
    action: str = ""
    method: str = "get"
    inputs: list[FormInput] = field(default_factory=list)

    @property
    def password_fields(self) -> list[str]:
        return [item.name for item in self.inputs if item.kind == "password"]

    @property
    def text_fields(self) -> list[str]:
        return [item.name for item in self.inputs if item.visible_text]

    @property
    def names(self) -> set[str]:
        return {item.name for item in self.inputs}

    def carried_fields(self) -> dict[str, str]:
        """What a browser submits without the user typing: hidden fields (a CSRF token), defaults, ticked boxes."""
        carried = {}
        for item in self.inputs:
            if item.kind in _NEVER_SUBMITTED_TYPES or item.kind == "password":
                continue
            if item.kind in _CHECKED_TYPES and not item.checked:
                continue
            carried[item.name] = item.value
        return carried

    def hidden_fields(self) -> list[str]:
        return [item.name for item in self.inputs if item.kind == "hidden"]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[LoginForm] = []
        self.forms_left_out = 0
        self._form: LoginForm | None = None
        self._label_text: list[str] | None = None
        self._label_for = ""
        self._label_inputs: list[FormInput] = []
        self._labels_by_id: dict[str, str] = {}
        self.metas: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = LoginForm(attributes.get("action", ""), attributes.get("method", "get").lower() or "get")
        elif tag == "meta" and len(self.metas) < _MAX_METAS:
            self.metas.append(attributes)
        elif tag == "label":
            self._label_text, self._label_for, self._label_inputs = [], attributes.get("for", ""), []
        elif tag == "input" and self._form is not None and attributes.get("name"):
            hints = [attributes.get(key, "") for key in ("autocomplete", "placeholder", "aria-label", "title")]
            item = FormInput(
                name=attributes["name"],
                kind=attributes.get("type", "text").lower() or "text",
                value=attributes.get("value", ""),
                checked="checked" in attributes,
                element_id=attributes.get("id", ""),
                hints=[hint for hint in hints if hint],
            )
            if not self._form.inputs:
                if len(self.forms) >= MAX_FORMS:
                    self.forms_left_out += 1
                    self._form = None
                    return
                self.forms.append(self._form)
            self._form.inputs.append(item)
            if self._label_text is not None:
                self._label_inputs.append(item)

    def handle_data(self, data: str) -> None:
        if self._label_text is not None:
            self._label_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "label" and self._label_text is not None:
            text = " ".join("".join(self._label_text).split())
            for item in self._label_inputs:
                item.hints.append(text)
            if self._label_for and len(self._labels_by_id) < _MAX_LABELS:
                self._labels_by_id[self._label_for] = text
            self._label_text = None

    def finish(self) -> None:
        """Attach `<label for=...>` texts to their inputs, once the whole page has been fed."""
        for form in self.forms:
            for item in form.inputs:
                if item.element_id in self._labels_by_id:
                    item.hints.append(self._labels_by_id[item.element_id])


@dataclass(frozen=True)
class ParsedPage:
    """A page's text, and its forms and <meta> tags as parsed once."""

    text: str
    forms: list[LoginForm]
    metas: list[dict[str, str]]
    forms_left_out: int = 0  # forms with inputs past MAX_FORMS, not kept


def parse_page(html: str, deadline: Deadline | None = None) -> ParsedPage:
    """The forms and <meta> tags of `html`; TimeoutError if `deadline` passes while parsing."""
    parser = _FormParser()
    for start in range(0, len(html), _FEED_CHARS):
        if deadline is not None and deadline.expired:
            raise TimeoutError("the deadline passed while the page was parsed")
        try:
            parser.feed(html[start : start + _FEED_CHARS])
        except AssertionError:
            # Python 3.11's parser asserts on some malformed declarations ("<![ "): the page ends there for us.
            break
    parser.finish()
    return ParsedPage(html, parser.forms, parser.metas, parser.forms_left_out)


def _parsed(html: str | ParsedPage) -> ParsedPage:
    return html if isinstance(html, ParsedPage) else parse_page(html)


def parse_forms(html: str | ParsedPage) -> list[LoginForm]:
    return _parsed(html).forms


def meta_csrf_fields(html: str | ParsedPage) -> dict[str, str]:
    """The CSRF token a page's script would copy from a <meta> tag into the form, by the field name it goes in.

    Rails' pair (`csrf-param` names the field, `csrf-token` holds the value) first; else every <meta> whose name
    says csrf or xsrf, sent as a field of that same name.
    """
    page = _parsed(html)
    metas = {meta.get("name", "").strip(): meta.get("content", "") for meta in page.metas if meta.get("name")}
    if metas.get("csrf-param") and "csrf-token" in metas:
        return {metas["csrf-param"]: metas["csrf-token"]}
    return {
        name: value
        for name, value in metas.items()
        if any(word in name.lower() for word in ("csrf", "xsrf")) and name.lower() != "csrf-param"
    }


def find_login_form(html: str | ParsedPage, settings: LoginPage | None = None) -> LoginForm | None:
    """The login form: the one holding the profile's password field if it names one, else the first with a password."""
    forms = parse_forms(html)
    if settings is not None and settings.password_field:
        return next((form for form in forms if settings.password_field in form.names), None)
    return next((form for form in forms if form.password_fields), None)


def username_field(form: LoginForm, settings: LoginPage | None = None) -> str | None:
    """The field the username goes in: the profile's if named and present, else the likeliest text field."""
    if settings is not None and settings.username_field and settings.username_field in form.names:
        return settings.username_field
    hinted = [name for name in form.text_fields if any(hint in name.lower() for hint in _USERNAME_HINTS)]
    candidates = hinted or form.text_fields
    return candidates[0] if candidates else None


def password_field(form: LoginForm, settings: LoginPage | None = None) -> str:
    if settings is not None and settings.password_field and settings.password_field in form.names:
        return settings.password_field
    return form.password_fields[0]


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower()
    words = set(re.findall(r"\d+[a-z]+|[a-z]+", spaced))
    if "one-time" in spaced or "one time" in spaced or "onetime" in spaced:
        words.add("otp")
    return words


def _asks_for_code(item: FormInput) -> bool:
    if not item.visible_text and item.kind != "password":
        return False
    return any(_words(text) & _SECOND_FACTOR_WORDS for text in (item.name, item.element_id, *item.hints))


def second_factor_prompt(html: str | ParsedPage, marker: str | None = None) -> str | None:
    """What shows that `html` asks for a one-time code, or None: the profile's marker, or the code field's name.

    A form counts when every field a person types into asks for a code, so a login form that came back, or a
    dashboard with a search box, is never mistaken for one.
    """
    page = _parsed(html)
    if marker and marker in page.text:
        return f"marker: {marker}"
    for form in page.forms:
        typed = [item for item in form.inputs if item.visible_text or item.kind == "password"]
        if typed and all(_asks_for_code(item) for item in typed):
            return typed[0].name
    return None


# --- judging the answer -------------------------------------------------------------------------------------------
