"""`--push-to-hub REPO`: upload an exported folder with huggingface_hub, or say in one line why not.

The folder is always written first, so a failed upload loses nothing: the message says how to retry.
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.extras import needs
from distill.owned import OwnedFolder


@needs("export", purpose="--push-to-hub")
def check_repo_id(repo_id: str) -> None:
    """Refuse a malformed repo id before any work is done."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise DistillError(f"--push-to-hub {repo_id!r} is not a Hub repo id: use owner/name") from None
    if "/" not in repo_id:
        raise DistillError(f"--push-to-hub {repo_id!r}: give the owner too, as owner/name")


@needs("export", purpose="--push-to-hub")
def push_folder(folder: Path, repo_id: str, repo_type: str, private: bool = False) -> str:
    """Create the repo if needed and upload the files distill wrote in FOLDER (not the user's files beside them,
    nor its record of them); returns the repo URL."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    check_repo_id(repo_id)
    retry = (f"the folder is written ({folder}); upload it later with: "
             f"hf upload {repo_id} {folder} --repo-type {repo_type}")
    token = get_token()
    if not token:
        raise DistillError(f"no Hugging Face token: set HF_TOKEN or run `hf auth login`, then run again; {retry}")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                          allow_patterns=OwnedFolder.in_place(folder).owned_files(),
                          commit_message="Upload with distill export")
    except OfflineModeIsEnabled:
        raise DistillError(f"HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it to push; {retry}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        reason = ("the token was refused (401): check HF_TOKEN" if status == 401 else
                  f"no write access to {repo_id} (403)" if status == 403 else _first_line(exc))
        raise DistillError(f"the Hub refused the upload: {reason}; {retry}") from None
    except (OSError, ConnectionError) as exc:  # no network, DNS, refused connection, TLS
        raise DistillError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({_first_line(exc)}); "
                           f"{retry}") from None
    except Exception as exc:  # httpx's transport errors are not OSErrors
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise DistillError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({_first_line(exc)}); "
                               f"{retry}") from None
        raise
    return str(url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
