"""The webhooks' front doors under hostile input: who may post, and what a bad header gets."""

from __future__ import annotations

import httpx
import orjson

from config.settings import DEV_APP_SECRET, DEV_VERIFY_TOKEN
from gateway.app import WEBHOOK_PATH
from gateway.msg91 import PATH as MSG91_PATH
from gateway.signature import HEADER, sign
from tests.conftest import APP_SECRET, MSG91_SECRET
from tests.security_fixtures import PRODUCTION, StartGateway, own_gateway  # noqa: F401
from tests.support import envelope, new_phone, text_message

# Only MSG91 configured: the Cloud API's secrets are unset.
MSG91_ONLY = {
    "whatsapp_access_token": None,
    "whatsapp_phone_number_id": None,
    "whatsapp_app_secret": None,
    "whatsapp_verify_token": None,
    "msg91_auth_key": "msg91-key",
    "msg91_sender_id": "919800000000",
}


async def _post_signed(http: httpx.AsyncClient, secret: str) -> httpx.Response:
    body = orjson.dumps(envelope([text_message(new_phone(), "forged")]))
    return await http.post(
        WEBHOOK_PATH,
        content=body,
        headers={HEADER: sign(body, secret), "Content-Type": "application/json"},
    )


async def test_an_msg91_production_refuses_cloud_api_bodies_signed_with_the_dev_secret(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(**PRODUCTION, **MSG91_ONLY)
    forged = await _post_signed(gateway.http, DEV_APP_SECRET)
    assert forged.status_code == 404
    challenge = await gateway.http.get(
        WEBHOOK_PATH,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": DEV_VERIFY_TOKEN,
            "hub.challenge": "7",
        },
    )
    assert challenge.status_code == 404
    assert gateway.routed.items == []
    # Its own webhook is there.
    report = await gateway.http.post(
        MSG91_PATH,
        json={"requestId": "r1", "status": "sent"},
        headers={"X-Msg91-Secret": MSG91_SECRET},
    )
    assert report.status_code == 200


async def test_an_msg91_deployment_in_development_also_has_no_cloud_api_webhook(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(**MSG91_ONLY)
    assert (await _post_signed(gateway.http, DEV_APP_SECRET)).status_code == 404


async def test_without_an_msg91_secret_there_is_no_msg91_webhook(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(msg91_webhook_secret=None)
    response = await gateway.http.post(MSG91_PATH, json={"requestId": "r1", "status": "sent"})
    assert response.status_code == 404
    assert (await _post_signed(gateway.http, APP_SECRET)).status_code == 200


async def test_a_non_ascii_signature_header_is_forbidden_not_a_server_error(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway()
    body = orjson.dumps(envelope([text_message(new_phone(), "hi")]))
    for header in ("sha256=é".encode(), b"sha256=\xff\xfe", "sha256=١٢٣".encode()):
        response = await gateway.http.post(
            WEBHOOK_PATH,
            content=body,
            headers={HEADER: header},  # type: ignore[dict-item]
        )
        assert response.status_code in (401, 403), header
    for secret in ("é".encode(), b"\xff\xfe"):
        response = await gateway.http.post(
            MSG91_PATH,
            content=b"{}",
            headers={"X-Msg91-Secret": secret},  # type: ignore[dict-item]
        )
        assert response.status_code in (401, 403), secret


async def test_non_ascii_digits_in_a_path_id_are_not_found_not_a_server_error(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    from gateway.auth_tokens import issue_access_token

    gateway = await own_gateway()
    token = issue_access_token(gateway.settings, 1, "admin")
    for raw in ("²", "١٢٣", "٣"):
        response = await gateway.http.get(
            f"/api/conversations/{raw}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 404, raw
