"""gcp-storage-emulator plus two behaviours of real GCS that it lacks and that tensorstore
(Orbax's OCDBT checkpoint writer) relies on for its read-modify-write commits:

- a download carries the object's generation in `x-goog-generation` (tensorstore reads the
  generation of what it read from that header; without it every second write to a
  checkpoint's manifest fails with "Malformed StorageGeneration");
- an upload with `ifGenerationMatch=G` is refused with 412 unless the object's generation is
  G (0: the object must not exist), as GCS does.

Usage: python tests/gcs_emulator_server.py PORT BUCKET (in-memory storage, 127.0.0.1).
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_download, _insert = objects.download, objects.insert


def _generation(storage, bucket: str, name: str) -> str:
    try:
        return str(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return "0"


def download(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
        bucket, name = request.params["bucket_name"], request.params["object_id"]
        response["x-goog-generation"] = _generation(storage, bucket, name)
        response["x-goog-metageneration"] = "1"


def _upload_name(request) -> str | None:
    if request.query.get("name"):
        return request.query["name"][0]
    data = request.data
    if isinstance(data, dict):
        meta = data.get("meta", data)
        return meta.get("name") if isinstance(meta, dict) else None
    return None


def insert(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    name = _upload_name(request)
    if wanted and name is not None:
        have = _generation(storage, request.params["bucket_name"], name)
        if have != wanted[0]:
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": "conditionNotMet"}})
            return None
    return _insert(request, response, storage, *args, **kwargs)


def _patch() -> None:
    objects.download = download  # objects.get calls it for alt=media
    for _, handlers in server.HANDLERS:
        for method, fn in list(handlers.items()):
            if fn is _download:
                handlers[method] = download
            elif fn is _insert:
                handlers[method] = insert


def main(port: int, bucket: str) -> None:
    _patch()
    server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
