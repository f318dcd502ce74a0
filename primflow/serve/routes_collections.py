"""Collection routes: upload documents, list, delete (``collections.py`` does the work).

``POST /v1/collections/{name}/documents`` takes ``multipart/form-data`` (one or more
file parts: .txt, .md, .pdf, .jsonl) or JSON (``{"documents": [{"text", "source"}]}``);
the first upload creates the collection. The name is captured whole (slashes
included) so a path-like name gets a 422 that says what a name may be, rather than a
bare 404. Uploads are admitted like queries (429 when full, 503 while draining), so a
drain waits for an upload in progress.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Literal

import pydantic
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from primflow.api.documents import Document
from primflow.collections import Backend, CollectionMeta
from primflow.serve.collections import BadUpload, UploadedFile, parse_uploads
from primflow.serve.errors import api_error, error_for, validation_error
from primflow.serve.guards import require_api_key
from primflow.serve.routes_query import ERROR_RESPONSES, service_of
from primflow.serve.schemas import CollectionInfo, UploadRequest, UploadResponse
from primflow.serve.service import Service, documents_of

router = APIRouter(dependencies=[Depends(require_api_key)])

NamePath = Path(description="the collection: lowercase letters, digits and _ (e.g. handbook)")
MAX_NUM_FILES = 1_000
_upload_numbers = itertools.count()

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}},
        },
    }
}


def collection_info(meta: CollectionMeta) -> CollectionInfo:
    return CollectionInfo(
        name=meta.name,
        backend=str(meta.backend),
        num_documents=meta.num_documents,
        num_chunks=meta.num_chunks,
        dim=meta.dim,
        embedding_model=meta.embedding_model,
        chunk_size=meta.chunk_size,
        chunk_overlap=meta.chunk_overlap,
        created_at=meta.created_at,
        updated_at=meta.updated_at,
    )


@router.get("/v1/collections", summary="the persistent collections")
async def list_collections(request: Request) -> dict[str, list[CollectionInfo]]:
    metas = service_of(request).collections.list()
    return {"collections": [collection_info(m) for m in metas]}


@router.post(
    "/v1/collections/{name:path}/documents",
    summary="Chunk, embed and index documents into a collection (created if new)",
    responses={**ERROR_RESPONSES, 201: {"description": "created the collection"}},
    response_model=UploadResponse,
    openapi_extra=UPLOAD_BODY,
)
async def upload_documents(
    request: Request,
    name: str = NamePath,
    chunk_size: int | None = Query(None, gt=0, le=100_000, description="new collections"),
    chunk_overlap: int | None = Query(None, ge=0, le=100_000, description="new collections"),
    backend: Literal["faiss", "pgvector"] | None = Query(
        None, description="new collections (default: pgvector with --pgvector, else faiss)"
    ),
) -> JSONResponse:
    service = service_of(request)
    try:
        documents = await _documents(request, service, name)
        ticket = service.admission.admit(f"upload:{name}:{next(_upload_numbers)}")
    except Exception as exc:
        raise error_for(exc, None, service.settings.retry_after_s) from None
    try:
        report, collection, is_new = await service.collections.add(
            name,
            documents,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            backend=Backend(backend) if backend else None,
        )
    except Exception as exc:
        raise error_for(exc, None) from None
    finally:
        ticket.release()
    body = UploadResponse(
        collection=collection_info(collection.meta),
        is_new=is_new,
        num_documents_added=report.num_documents,
        num_chunks_added=report.num_chunks,
    )
    return JSONResponse(body.model_dump(), status_code=201 if is_new else 200)


@router.delete(
    "/v1/collections/{name:path}",
    summary="Delete a collection (its files, or its pgvector table)",
    responses=ERROR_RESPONSES,
)
async def delete_collection(request: Request, name: str = NamePath) -> dict[str, str]:
    try:
        await service_of(request).collections.delete(name)
    except Exception as exc:
        raise error_for(exc, None) from None
    return {"deleted": name}


async def _documents(request: Request, service: Service, name: str) -> list[Document]:
    from primflow.collections import check_name

    check_name(name)  # before reading a byte of the body
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        files = await _files(request)
        return await asyncio.to_thread(parse_uploads, files)  # PDFs parse for a while
    if content_type == "application/json":
        return _inline(await request.body(), service, name)
    raise api_error(
        415,
        "unsupported_media_type",
        "send files as multipart/form-data or documents as application/json, "
        f"not {content_type[:80]!r}",
    )


async def _files(request: Request) -> list[UploadedFile]:
    files: list[UploadedFile] = []
    async with request.form(max_files=MAX_NUM_FILES, max_fields=MAX_NUM_FILES) as form:
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise BadUpload(field, f"form field {field[:40]!r}: only file parts are taken")
            files.append(UploadedFile(value.filename or "", await value.read()))
    return files


def _inline(raw: bytes, service: Service, name: str) -> list[Document]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadUpload("body", f"the body is not JSON: {exc}") from None
    try:
        body = UploadRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        raise validation_error(exc.errors(), prefix="body") from None
    # Default sources continue the collection's numbering, so a second upload of
    # unnamed documents does not collide with the first.
    store = service.collections.store
    offset = store.open(name).meta.num_documents if store.exists(name) else 0
    documents = documents_of(body.documents)
    return [
        d if item.source else Document(d.text, f"doc-{offset + i}")
        for i, (d, item) in enumerate(zip(documents, body.documents, strict=True))
    ]
