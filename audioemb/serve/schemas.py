"""Response models of the ``audioemb serve`` JSON API (they make its OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HitOut(BaseModel):
    rank: int
    path: str = Field(description="Path relative to the collection root, as the index records it.")
    start: float = Field(description="Segment start, seconds.")
    end: float = Field(description="Segment end, seconds.")
    score: float = Field(description="Cosine similarity to the query.")
    duration_s: float | None = Field(description="Duration of the whole file, seconds.")
    audio_url: str
    thumbnail_url: str


class SearchOut(BaseModel):
    query: str
    k: int
    took_ms: float
    index_version: int
    hits: list[HitOut]


class FileOut(BaseModel):
    path: str
    duration_s: float | None
    size: int | None
    error: str | None
    cluster: int | None = None
    audio_url: str | None = None


class FilesOut(BaseModel):
    total: int
    offset: int
    files: list[FileOut]


class InfoOut(BaseModel):
    model: str
    dim: int
    count: int
    n_files: int
    index_type: str
    segments_s: float | None
    index_version: int
    clusters: bool
    max_upload_bytes: int


class ExemplarOut(BaseModel):
    path: str
    start: float | None = None
    end: float | None = None
    distance: float
    audio_url: str


class ClusterOut(BaseModel):
    cluster: int
    name: str
    size: int
    exemplars: list[ExemplarOut]


class ClustersOut(BaseModel):
    k: int
    method: str | None
    clusters: list[ClusterOut]


class MembersOut(BaseModel):
    cluster: int
    total: int
    offset: int
    members: list[ExemplarOut]


class MapOut(BaseModel):
    projection: str
    x: list[float]
    y: list[float]
    cluster: list[int] = Field(description="Cluster of each point, -1 without clusters.")
    path: list[int] = Field(description="Index into paths.")
    start: list[float]
    end: list[float]
    paths: list[str]
    clusters: list[dict]
