"""The client: generic verbs over the REST API (get, list, create, update, bulk) and the
pipeline's own (publish, start_flow, wait).

Writes that are safe to repeat (every POST here carries an Idempotency-Key) are retried on
connection failures and 503s, so a flaky network never publishes twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from bifrost_client.models import RenderJob, Version

Json = dict[str, Any]
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
RENDER_FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


class ApiError(Exception):
    """An error answer of the API: its status, code, message and details."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


class BifrostClient:
    """A session with one Bifrost API as one user (their token); use it as a context manager."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries

    def __enter__(self) -> BifrostClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Generic verbs

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        safe_to_retry = method in ("GET", "PUT", "DELETE") or bool(headers and "Idempotency-Key" in headers)
        attempts = self.retries + 1 if safe_to_retry else 1
        for attempt in range(attempts):
            try:
                answer = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(0.2 * 2**attempt)
                continue
            if answer.status_code == 503 and attempt + 1 < attempts:
                time.sleep(0.2 * 2**attempt)
                continue
            return _result(answer)
        raise AssertionError("unreachable")

    def get(self, resource: str, entity_id: int) -> Json:
        """One entity, e.g. `get("shots", 42)`."""
        return self.request("GET", f"/{resource}/{entity_id}")

    def list(self, path: str, *, page_size: int = 500, **filters: Any) -> Iterator[Json]:
        """Every item of a list, following the cursor page by page."""
        params = {name: value for name, value in filters.items() if value is not None}
        after: int | None = None
        while True:
            page = self.request(
                "GET",
                path,
                params={**params, "limit": page_size, **({"after": after} if after is not None else {})},
            )
            yield from page["items"]
            after = page["next_cursor"]
            if after is None:
                return

    def create(self, path: str, data: Json, *, idempotency_key: str | None = None) -> Json:
        """POST with an Idempotency-Key (a fresh one unless given), so retries are safe."""
        key = idempotency_key or uuid.uuid4().hex
        return self.request("POST", path, json=data, headers={"Idempotency-Key": key})

    def update(self, resource: str, entity_id: int, changes: Json) -> Json:
        """Partial update: only the fields given change."""
        return self.request("PATCH", f"/{resource}/{entity_id}", json=changes)

    def bulk(
        self, project_id: int, operations: list[Json], *, idempotency_key: str | None = None
    ) -> list[Json]:
        """Apply creates and updates in one transaction (all or nothing)."""
        answer = self.create(
            f"/projects/{project_id}/bulk", {"operations": operations}, idempotency_key=idempotency_key
        )
        return answer["results"]

    # Pipeline verbs

    def me(self) -> Json:
        return self.request("GET", "/users/me")

    def publish(
        self,
        task_id: int,
        *,
        variant: str = "main",
        comment: str = "",
        source: str = "",
        representations: list[Json] | None = None,
        meta: Json | None = None,
        idempotency_key: str | None = None,
    ) -> Version:
        """Publish a version of a task; Bifrost allocates its number."""
        data = {
            "task_id": task_id,
            "variant": variant,
            "comment": comment,
            "source": source,
            "representations": representations or [],
            "meta": meta or {},
        }
        return Version.model_validate(self.create("/versions", data, idempotency_key=idempotency_key))

    # Review sessions

    def add_note(
        self,
        version_id: int,
        body: str,
        *,
        frame_in: int | None = None,
        frame_out: int | None = None,
        drawing: Json | None = None,
        visibility: str = "internal",
    ) -> Json:
        """A note on a version, at a frame (or a range ending at `frame_out`), with an optional
        drawing (`{"strokes": [{"points": [[x, y], ...]}]}`, coordinates 0..1)."""
        data: Json = {"body": body, "visibility": visibility}
        data.update(
            {
                k: v
                for k, v in (("frame_in", frame_in), ("frame_out", frame_out), ("drawing", drawing))
                if v is not None
            }
        )
        return self.create(f"/versions/{version_id}/notes", data)

    def reply(self, note_id: int, body: str, *, visibility: str = "internal") -> Json:
        return self.create(f"/notes/{note_id}/replies", {"body": body, "visibility": visibility})

    def create_playlist(
        self,
        project_id: int,
        name: str,
        *,
        version_ids: list[int] | None = None,
        kind: str = "daily",
        shared_with_clients: bool = False,
    ) -> Json:
        data = {
            "name": name,
            "kind": kind,
            "shared_with_clients": shared_with_clients,
            "version_ids": version_ids or [],
        }
        return self.create(f"/projects/{project_id}/playlists", data)

    def add_to_playlist(
        self, playlist_id: int, version_ids: list[int], *, position: int | None = None
    ) -> Json:
        data: Json = {"version_ids": version_ids, **({"position": position} if position is not None else {})}
        return self.create(f"/playlists/{playlist_id}/versions", data)

    def approve(self, version_id: int, *, comment: str = "", playlist_id: int | None = None) -> Json:
        """Approve: the version and its task move to approved (their workflows permitting)."""
        return self.create(
            f"/versions/{version_id}/approve", {"comment": comment, "playlist_id": playlist_id}
        )

    def request_changes(self, version_id: int, *, comment: str = "", playlist_id: int | None = None) -> Json:
        return self.create(
            f"/versions/{version_id}/request-changes", {"comment": comment, "playlist_id": playlist_id}
        )

    def start_flow(
        self, project_id: int, flow: str, parameters: Json, *, idempotency_key: str | None = None
    ) -> Json:
        """Start a flow ("ingest" or "publish") for a project; answers the run (with `run_id`) at once."""
        return self.create(
            f"/projects/{project_id}/flows/{flow}/runs", parameters, idempotency_key=idempotency_key
        )

    def flow_run(self, run_id: str) -> Json:
        """A run's state (`state`: SCHEDULED, RUNNING, COMPLETED, FAILED, ...) and its `summary`."""
        return self.request("GET", f"/flow-runs/{run_id}")

    def wait(self, run_id: str, *, timeout: float = 3600, poll: float = 2.0) -> Json:
        """Poll a run until it ends (whatever the outcome); TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state"] in FINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {run_id} still {run['state']} after {timeout} s")
            time.sleep(poll)

    # Render jobs

    def submit_render(
        self,
        project_id: int,
        *,
        task_id: int,
        command: list[str],
        frames: str,
        chunk_size: int = 10,
        priority: int = 50,
        gpus_per_chunk: int = 1,
        timeout_seconds: int = 3600,
        retries: int = 2,
        environment: Mapping[str, str] | None = None,
        scene: str | None = None,
        name: str | None = None,
        pool: str = "bifrost-gpu",
        idempotency_key: str | None = None,
    ) -> RenderJob:
        """Submit a render job: `command` is a list of arguments with placeholders ({scene},
        {output}, {first}, {last}, {step}, {frames}, ...), rendered over `frames` (fileseq
        notation) in chunks. Bad input raises ApiError 422 and records nothing."""
        data: Json = {
            "task_id": task_id,
            "command": list(command),
            "frames": frames,
            "chunk_size": chunk_size,
            "priority": priority,
            "gpus_per_chunk": gpus_per_chunk,
            "timeout_seconds": timeout_seconds,
            "retries": retries,
            "environment": dict(environment or {}),
            "pool": pool,
        }
        if scene is not None:
            data["scene"] = scene
        if name is not None:
            data["name"] = name
        answer = self.create(f"/projects/{project_id}/renders", data, idempotency_key=idempotency_key)
        return RenderJob.model_validate(answer)

    def render(self, job_id: int) -> RenderJob:
        """A render job with its `progress` (frames done of the total, chunks by state) and
        every chunk (state, attempts, host, GPU ids, times, exit code, log path)."""
        return RenderJob.model_validate(self.request("GET", f"/renders/{job_id}"))

    def renders(self, project_id: int, *, state: str | None = None) -> Iterator[RenderJob]:
        """The project's render jobs, oldest first, each with its progress."""
        for item in self.list(f"/projects/{project_id}/renders", state=state):
            yield RenderJob.model_validate(item)

    def cancel_render(self, job_id: int, *, idempotency_key: str | None = None) -> RenderJob:
        """Cancel a job: pending chunks never start, running ones are stopped by the farm."""
        return RenderJob.model_validate(
            self.create(f"/renders/{job_id}/cancel", {}, idempotency_key=idempotency_key)
        )

    def retry_render(self, job_id: int, *, idempotency_key: str | None = None) -> RenderJob:
        """Run a job's failed chunks again, their attempts reset."""
        return RenderJob.model_validate(
            self.create(f"/renders/{job_id}/retry-failed", {}, idempotency_key=idempotency_key)
        )

    def wait_render(self, job_id: int, *, timeout: float = 24 * 3600, poll: float = 5.0) -> RenderJob:
        """Poll a render job until it completes, fails or is cancelled (whatever the outcome);
        TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.render(job_id)
            if job.state in RENDER_FINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"render job {job_id} still {job.state} after {timeout} s")
            time.sleep(poll)


def _result(answer: httpx.Response) -> Any:
    if answer.status_code == 204:
        return None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.is_success:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise ApiError(
            answer.status_code, error.get("code", "error"), error.get("message", ""), error.get("details")
        )
    raise ApiError(answer.status_code, "error", answer.text[:200])
