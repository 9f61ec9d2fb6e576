"""Canned responses: create, read, update and delete; the reply box offers them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway.api.routing import ApiError, Call, Endpoint
from store import canned
from store.canned import CannedResponse, TitleTaken


class CannedBody(BaseModel):
    title: str = Field(min_length=1, max_length=80)
    body: str = Field(min_length=1, max_length=4096)


class CannedOut(BaseModel):
    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: CannedResponse) -> CannedOut:
        return cls.model_validate(row, from_attributes=True)


class CannedList(BaseModel):
    canned_responses: list[CannedOut]


class Deleted(BaseModel):
    deleted: bool = True


async def list_canned(call: Call) -> CannedList:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rows = await canned.all_responses(conn)
    return CannedList(canned_responses=[CannedOut.of(r) for r in rows])


async def get_canned(call: Call) -> CannedOut:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        row = await canned.get(conn, call.ids["canned_id"])
    if row is None:
        raise ApiError(404, "no such canned response")
    return CannedOut.of(row)


async def create_canned(call: Call) -> CannedOut:
    body: CannedBody = call.body
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        try:
            row = await canned.create(conn, body.title, body.body, call.user.user_id)
        except TitleTaken as exc:
            raise ApiError(409, "a canned response with this title exists") from exc
    return CannedOut.of(row)


async def update_canned(call: Call) -> CannedOut:
    body: CannedBody = call.body
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        try:
            row = await canned.update(conn, call.ids["canned_id"], body.title, body.body)
        except TitleTaken as exc:
            raise ApiError(409, "a canned response with this title exists") from exc
    if row is None:
        raise ApiError(404, "no such canned response")
    return CannedOut.of(row)


async def delete_canned(call: Call) -> Deleted:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        if not await canned.delete(conn, call.ids["canned_id"]):
            raise ApiError(404, "no such canned response")
    return Deleted()


_ONE = "/api/canned-responses/{canned_id}"
ENDPOINTS = [
    Endpoint("GET", "/api/canned-responses", list_canned, "All canned responses", "canned",
             response=CannedList),
    Endpoint("POST", "/api/canned-responses", create_canned, "Create a canned response",
             "canned", body=CannedBody, response=CannedOut, status=201, errors=(409,)),
    Endpoint("GET", _ONE, get_canned, "One canned response", "canned", response=CannedOut,
             errors=(404,)),
    Endpoint("PUT", _ONE, update_canned, "Replace a canned response", "canned",
             body=CannedBody, response=CannedOut, errors=(404, 409)),
    Endpoint("DELETE", _ONE, delete_canned, "Delete a canned response", "canned",
             response=Deleted, errors=(404,)),
]  # fmt: skip
