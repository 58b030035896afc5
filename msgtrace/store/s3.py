"""A store in an S3 bucket (AWS, MinIO, Ceph, any S3 emulator): the FileSystem of msgtrace.store.fs.

The client is obstore (the Rust `object_store` crate, the one Polars itself reads s3:// with):
listing by prefix with a delimiter (one request for a partition), whole-object PUTs (a large
file goes up in parts and still appears at once), deletes, and conditional writes: a PUT that
succeeds only when the key is absent (`If-None-Match: *`) or still holds the ETag the caller
read (`If-Match`), which is what the writers' leases need (msgtrace.store.lock). pyarrow's
S3FileSystem has no conditional writes; s3fs would bring fsspec and aiobotocore for less.

Settings are the standard AWS ones, read once (`s3_settings`): AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
AWS_DEFAULT_REGION, AWS_ALLOW_HTTP=true for a plain-HTTP endpoint, and else the profile
(AWS_PROFILE, default `default`) of the shared credentials and config files
(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, ~/.aws/). The same settings go to obstore and to
Polars (its storage_options), so the two clients always talk to the same place.

Nothing here is renamed into place: a file is written to a local temp file, then PUT whole; a
reader lists an object only once it is complete.
"""

from __future__ import annotations

import builtins
import configparser
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, TypeVar

from msgtrace.errors import MsgtraceError

T = TypeVar("T")


class ObjectStoreError(MsgtraceError):
    """The object store cannot be reached or refuses a request (no credentials, no such bucket)."""


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom: the standard AWS settings, resolved."""

    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    allow_http: bool = False

    def obstore_config(self) -> dict[str, str]:
        """obstore's S3Store config."""
        pairs = {
            "aws_endpoint": self.endpoint,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "aws_region": self.region,
        }
        return {k: v for k, v in pairs.items() if v}

    def polars_options(self) -> dict[str, str]:
        """Polars' storage_options for the same place."""
        pairs = {
            "aws_endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "aws_region": self.region,
            "aws_allow_http": "true" if self.allow_http else None,
        }
        return {k: v for k, v in pairs.items() if v}


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in {"1", "true", "yes", "on"}


def _profile(path: str, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.expanduser(path), encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    return dict(parser[section]) if parser.has_section(section) else {}


def s3_settings(env: dict[str, str] | None = None) -> S3Settings:
    """The AWS settings from the environment, else from the shared credentials and config files."""
    env = dict(os.environ) if env is None else env
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    creds = _profile(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), profile)
    config = _profile(
        env.get("AWS_CONFIG_FILE", "~/.aws/config"), profile if profile == "default" else f"profile {profile}"
    )
    from_files = {**config, **creds}
    keys_from_env = bool(env.get("AWS_ACCESS_KEY_ID"))  # a key and its secret come from one place
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or from_files.get("endpoint_url")
    return S3Settings(
        endpoint=endpoint,
        access_key_id=env.get("AWS_ACCESS_KEY_ID") if keys_from_env else from_files.get("aws_access_key_id"),
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY")
        if keys_from_env
        else from_files.get("aws_secret_access_key"),
        session_token=env.get("AWS_SESSION_TOKEN") if keys_from_env else from_files.get("aws_session_token"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or from_files.get("region"),
        allow_http=_truthy(env.get("AWS_ALLOW_HTTP")) or bool(endpoint and endpoint.startswith("http://")),
    )


def _errors(method: Callable[..., T]) -> Callable[..., T]:
    """obstore's failures (unreachable endpoint, refused credentials, no such bucket) as one
    ObjectStoreError naming the bucket and what to check."""

    @functools.wraps(method)
    def wrapper(self: S3FileSystem, *args: Any, **kwargs: Any) -> T:
        import obstore.exceptions as oe

        try:
            return method(self, *args, **kwargs)
        except (FileNotFoundError, oe.NotFoundError):
            raise
        except oe.BaseError as e:
            raise ObjectStoreError.naming(
                "{store} s3://{bucket}: {why}; check AWS_ENDPOINT_URL, the credentials and that the bucket exists",
                bucket=self.bucket,
                why=_first_line(e),
            ) from None

    return wrapper


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return lines[0][:300]


class S3FileSystem:
    """One bucket. Keys are the ObjectPaths' keys; a "directory" is a key prefix."""

    is_local = False

    def __init__(self, bucket: str, settings: S3Settings) -> None:
        try:
            from obstore.store import S3Store
        except ImportError:
            raise ObjectStoreError.naming(
                "{store} s3://{bucket}: a store on S3 needs the s3 extra: pip install 'msgtrace[s3]'", bucket=bucket
            ) from None

        self.bucket, self.settings = bucket, settings
        client = {"allow_http": True} if settings.allow_http else None
        self.client = S3Store(bucket, config=settings.obstore_config(), client_options=client)  # type: ignore[arg-type]
        self._polars = settings.polars_options()

    @staticmethod
    def _key(path: PurePath) -> str:
        return "/".join(path.parts[2:])  # parts: ("s3:", bucket, *key)

    def _prefix(self, directory: PurePath) -> str:
        key = self._key(directory)
        return key + "/" if key else ""

    @_errors
    def _listing(self, directory: PurePath) -> dict[str, Any]:
        import obstore

        return obstore.list_with_delimiter(self.client, self._prefix(directory))  # type: ignore[return-value]

    def list(self, directory: PurePath) -> list[str]:
        return [o["path"].rsplit("/", 1)[-1] for o in self._listing(directory)["objects"]]

    def list_dirs(self, directory: PurePath) -> builtins.list[str]:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self._listing(directory)["common_prefixes"]]

    @_errors
    def is_dir(self, path: PurePath) -> bool:
        import obstore

        for chunk in obstore.list(self.client, self._prefix(path), chunk_size=1):
            return len(chunk) > 0
        return False

    @_errors
    def _head(self, path: PurePath) -> dict[str, Any] | None:
        import obstore
        import obstore.exceptions as oe

        try:
            return obstore.head(self.client, self._key(path))  # type: ignore[return-value]
        except (FileNotFoundError, oe.NotFoundError):
            return None

    def exists(self, path: PurePath) -> bool:
        return self._head(path) is not None or self.is_dir(path)

    def size(self, path: PurePath) -> int:
        head = self._head(path)
        if head is None:
            raise FileNotFoundError(str(path))
        return int(head["size"])

    def read_text(self, path: PurePath) -> str | None:
        found = self.read_versioned(path)
        return None if found is None else found[0]

    @_errors
    def read_versioned(self, path: PurePath) -> tuple[str, str] | None:
        """A small object's text and its ETag (for replace_text_if), or None when absent."""
        import obstore
        import obstore.exceptions as oe

        try:
            result = obstore.get(self.client, self._key(path))
            text = bytes(result.bytes()).decode("utf-8")
        except (FileNotFoundError, oe.NotFoundError):
            return None
        return text, str(result.meta["e_tag"])

    @contextmanager
    def atomic_path(self, path: PurePath, suffix: str) -> Iterator[str]:
        """A local temp file to write; on success it is PUT (in parts when large) as `path`."""
        folder = tempfile.mkdtemp(prefix="msgtrace-s3-")
        try:
            tmp = os.path.join(folder, "part" + suffix)
            yield tmp
            self._upload(path, Path(tmp))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @_errors
    def _upload(self, path: PurePath, local: Path) -> None:
        import obstore

        obstore.put(self.client, self._key(path), local)

    @_errors
    def write_text(self, path: PurePath, text: str) -> None:
        import obstore

        obstore.put(self.client, self._key(path), text.encode("utf-8"))

    @_errors
    def create_text(self, path: PurePath, text: str) -> bool:
        import obstore
        import obstore.exceptions as oe

        try:
            obstore.put(self.client, self._key(path), text.encode("utf-8"), mode="create")
        except oe.AlreadyExistsError:
            return False
        except oe.PreconditionError:  # some S3 implementations answer 412 for If-None-Match
            return False
        return True

    @_errors
    def replace_text_if(self, path: PurePath, text: str, etag: str) -> bool:
        """Replace a small object only if it still has this ETag; False when someone changed it."""
        import obstore
        import obstore.exceptions as oe

        try:
            obstore.put(self.client, self._key(path), text.encode("utf-8"), mode={"e_tag": etag})
        except (oe.PreconditionError, oe.NotFoundError, FileNotFoundError):
            return False
        return True

    @_errors
    def delete(self, path: PurePath) -> None:
        import obstore

        obstore.delete(self.client, self._key(path))  # S3 answers a missing key with success

    @_errors
    def rename(self, src: PurePath, dst: PurePath) -> None:
        import obstore

        obstore.copy(self.client, self._key(src), self._key(dst))
        obstore.delete(self.client, self._key(src))

    def uri(self, path: PurePath) -> str:
        return str(path)

    def storage_options(self) -> dict[str, str] | None:
        return self._polars


@functools.lru_cache(maxsize=16)
def _cached(bucket: str, settings: S3Settings) -> S3FileSystem:
    return S3FileSystem(bucket, settings)


def s3_filesystem(bucket: str) -> S3FileSystem:
    """The file system of a bucket with the current AWS settings (one client per bucket and settings)."""
    return _cached(bucket, s3_settings())
