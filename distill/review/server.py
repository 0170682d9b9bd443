"""`distill review DIR --serve`: one page (static/) and a small JSON API on Starlette and uvicorn.

Access: every request needs a token. The printed URL carries one; the first request with it sets an
HttpOnly, SameSite=Strict cookie and redirects to the same URL without it (so it does not linger in
the address bar or a Referer), and later requests send the cookie (or `Authorization: Bearer`).
On 127.0.0.1 (the default) a token made for this session is accepted, for the person who started
it; bound anywhere else only per-reviewer tokens (`distill review add-reviewer`) are, and each
names its reviewer. Writes also need an `X-Distill` header, which a cross-site form cannot send.
A write's body is refused past MAX_BODY_BYTES before it is read in full, checked against a typed
model (400 naming the field), and a database that cannot take it (disk full, locked) is a JSON
message the page shows, never a traceback.
The page's Content-Security-Policy allows no inline script and nothing from elsewhere; the page
itself never turns teacher text into HTML (static/review.js builds text nodes).
`/documents/NAME` serves an original of the user's documents to the same token holders: only a file the
run's documents.json records, by that name, and only unchanged since the run (sources.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

import uvicorn
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from distill.errors import DistillError, explain, is_busy
from distill.records import REVIEW_REASONS
from distill.review.ledger import token_digest
from distill.review.model import DecisionRequest, UndoRequest
from distill.review.session import BadDecision, ReviewSession
from distill.review.sources import ROUTE, Unavailable

STATIC = Path(__file__).parent / "static"
COOKIE = "distill_review"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FILES = {"review.js": "text/javascript", "review.css": "text/css"}
# The largest legitimate body is an edit: the whole conversation, rewritten. 2 MiB holds a 128k-token
# context (about 512k characters) even at 4 UTF-8 bytes a character; anything bigger is not a review.
MAX_BODY_BYTES = 2 * 1024 * 1024
PLAIN_HTTP_WARNING = ("warning: the review page is plain HTTP: anyone on the network can read the data and, with "
                      "the token, decide; put it behind TLS or use an SSH tunnel")


class BodyTooLarge(Exception):
    """A request body over MAX_BODY_BYTES (by its Content-Length, or counted as it arrived)."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused as soon as it is known to pass `limit`: a 200 MB body is never read in full."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def parse_body(model: type[BaseModel], body: bytes) -> BaseModel:
    """The body as `model`; a BadDecision naming the first field that is wrong (never echoing its value)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        problems = err.errors(include_url=False, include_input=False, include_context=False)
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        if first["type"] == "json_invalid":
            raise BadDecision(f"the request body is not JSON ({first['msg']})") from None
        field = ".".join(str(part) for part in first["loc"]) or "the request body"
        raise BadDecision(f"{field}: {first['msg']}{more}") from None


def storage_problem(err: sqlite3.Error, path: Path, write: bool) -> tuple[int, str]:
    """The HTTP status and the reviewer's one line for a database that refused a request."""
    lost = "your decision was not saved; " if write else "the page could not read the review; "
    again = "press again" if write else "reload the page"
    if (getattr(err, "sqlite_errorname", "") or "").startswith("SQLITE_FULL"):
        return 507, f"the disk is full: {lost}free some space and {again}"
    if is_busy(err):
        return 503, f"the run is busy (another process holds run.db's lock): {lost}{again}"
    return 500, f"{lost}{explain(err, path)}"


class Access:
    """Who a token belongs to: this session's owner (loopback only) or a named reviewer."""

    def __init__(self, session: ReviewSession, owner: str | None, owner_token: str | None):
        self.session, self.owner = session, owner
        self.owner_digest = token_digest(owner_token) if owner_token else None

    def reviewer(self, token: str | None) -> str | None:
        if not token:
            return None
        digest = token_digest(token)
        if self.owner_digest and hmac.compare_digest(digest, self.owner_digest):
            return self.owner
        for known, name in self.session.ledger.reviewer_digests().items():
            if hmac.compare_digest(digest, known):
                return name
        return None


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def build_app(session: ReviewSession, owner: str | None = None, owner_token: str | None = None,
              allowed_hosts: list[str] | None = None) -> Starlette:
    access = Access(session, owner, owner_token)

    def refuse() -> Response:
        return PlainTextResponse("This review needs its access token: open the URL that `distill review --serve` "
                                 "printed (or the one `distill review add-reviewer` made for you).\n", status_code=401,
                                 headers=HEADERS)

    def who(request: Request) -> str | None:
        return access.reviewer(_token(request))

    async def page(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            if access.reviewer(given) is None:
                return refuse()
            rest = {k: v for k, v in request.query_params.items() if k != "token"}
            response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), status_code=303,
                                        headers=HEADERS)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/")
            return response
        if who(request) is None:
            return refuse()
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if who(request) is None:
            return refuse()
        if name not in FILES:
            return PlainTextResponse("not found\n", status_code=404, headers=HEADERS)
        return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)

    async def document(request: Request) -> Response:
        """An original document of the run, by its recorded name (sources.py decides what may be served)."""
        if who(request) is None:
            return refuse()
        try:
            original = session.documents.original(request.path_params["name"])
        except Unavailable as err:
            if "application/json" in request.headers.get("accept", ""):
                return error(err.message, err.status)
            return PlainTextResponse(err.message + "\n", status_code=err.status, headers=HEADERS)
        headers = {k: v for k, v in HEADERS.items() if k != "Content-Security-Policy"}
        if original.policy:
            headers["Content-Security-Policy"] = original.policy
        headers["Content-Disposition"] = f"inline; filename*=utf-8''{quote(original.name.rsplit('/', 1)[-1])}"
        return Response(original.content, media_type=original.media_type, headers=headers)

    def error(message: str, status: int) -> Response:
        return JSONResponse({"error": message}, status_code=status, headers=HEADERS)

    def api(handler, body_model: type[BaseModel] | None = None):
        write = body_model is not None

        async def endpoint(request: Request) -> Response:
            reviewer = who(request)
            if reviewer is None:
                return error("missing or unknown access token", 401)
            if write and request.headers.get("x-distill") != "1":
                return error("writes need the X-Distill header", 403)
            try:
                body = parse_body(body_model, await read_body(request)) if body_model is not None else None
                result = handler(request, reviewer, body)
            except BodyTooLarge:
                return error(f"the request body is over the {MAX_BODY_BYTES // 2**20} MiB a decision may take", 413)
            except BadDecision as err:
                return error(str(err), 400)
            except sqlite3.Error as err:
                status, message = storage_problem(err, session.ledger.store.path, write)
                return error(message, status)
            return JSONResponse(result, headers=HEADERS)

        return endpoint

    def hello(request, reviewer, body):
        settings = session.settings
        return {"reviewer": reviewer, "reasons": [{"code": c, "label": label, "key": str(k)}
                                                  for k, (c, label) in enumerate(REVIEW_REASONS.items(), 1)],
                "threshold": settings.threshold, "directory": str(session.directory)}

    def overview(request, reviewer, body):
        return session.overview(reviewer)

    def card(request, reviewer, body):
        return session.card(request.path_params["item_id"], reviewer).model_dump(mode="json")

    def decide(request, reviewer, body: DecisionRequest):
        decision = session.decide(reviewer, body.item_id, body.verdict, reasons=body.reasons or [],
                                  note=body.note or "", messages=body.messages, seconds=body.seconds,
                                  client_id=body.client_id or None, turn=body.turn)
        return {"decision": decision.model_dump(mode="json")}

    def undo(request, reviewer, body: UndoRequest):
        decision = session.undo(reviewer, client_id=body.client_id or None)
        return {"undone": decision.model_dump(mode="json") if decision else None}

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route(ROUTE + "{name:path}", document),
        Route("/api/hello", api(hello)),
        Route("/api/queue", api(overview)),
        Route("/api/item/{item_id}", api(card)),
        Route("/api/decide", api(decide, DecisionRequest), methods=["POST"]),
        Route("/api/undo", api(undo, UndoRequest), methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (a name other than localhost may resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so the URL can be printed (port 0: any free one) before serving starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise DistillError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port "
                           "(0 picks a free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ReviewServer:
    """The app on uvicorn, on a socket bound up front. `run()` blocks; `start()` runs it in a thread."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 8765, owner: str | None = None):
        self.session = ReviewSession(directory)
        local = host in LOCAL_HOSTS
        if not local and not self.session.ledger.reviewer_digests():
            self.session.close()
            raise DistillError(f"binding to {host} needs per-reviewer tokens: add one with "
                               f"`distill review add-reviewer {directory} NAME` first")
        self.owner_token = secrets.token_urlsafe(32) if local else None
        self.sock = bind(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        allowed = [*LOCAL_HOSTS] if local else None  # a DNS-rebound name cannot reach a loopback review
        self.app = build_app(self.session, owner=owner, owner_token=self.owner_token, allowed_hosts=allowed)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                                    access_log=False))
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        """The owner's URL (loopback), or the base URL a reviewer adds their token to."""
        return self.base_url + (f"?token={self.owner_token}" if self.owner_token else "")

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.close()

    def start(self) -> ReviewServer:
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        self.sock.close()
        self.session.close()
