"""Access tokens: expiring offline tokens with refresh, revocation, and uninstall."""

from tests.simulator.helpers import DOMAIN, SECRET, TOKEN

UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
QUERY = "{ shop { name } }"


def _refresh(api, refresh_token, secret=SECRET):
    return api.http.post(
        f"{api.base}/{DOMAIN}/admin/oauth/access_token",
        data={
            "client_id": "simulator-client-id",
            "client_secret": secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        },
    )


def test_expiring_token_gets_401_after_an_hour_and_refreshes(clocked_api, clock):
    clocked_api.create_shop(token_expires_in=3600)
    issued = clocked_api.control("POST", f"/shops/{DOMAIN}/tokens", json={"expires_in": 3600}).json()
    assert issued["expires_in"] == 3600
    assert issued["refresh_token"].startswith("shprt_")
    token = issued["access_token"]
    assert clocked_api.graphql(QUERY, token=token).status_code == 200
    clock.advance(3599)
    assert clocked_api.graphql(QUERY, token=token).status_code == 200
    clock.advance(1)
    expired = clocked_api.graphql(QUERY, token=token)
    assert (expired.status_code, expired.json()) == (401, UNAUTHORIZED)
    assert clocked_api.rest("GET", "shop.json", token=TOKEN).status_code == 401  # the quick-start token expired too

    refreshed = _refresh(clocked_api, issued["refresh_token"])
    assert refreshed.status_code == 200
    fresh = refreshed.json()
    assert fresh["expires_in"] == 3600
    assert fresh["refresh_token"] != issued["refresh_token"]
    assert clocked_api.graphql(QUERY, token=fresh["access_token"]).status_code == 200
    # Until the new refresh token is used, the previous one stays valid ...
    assert _refresh(clocked_api, issued["refresh_token"]).status_code == 200
    newest = _refresh(clocked_api, fresh["refresh_token"]).json()
    assert newest["access_token"]
    # ... after that it is gone.
    gone = _refresh(clocked_api, issued["refresh_token"])
    assert (gone.status_code, gone.json()["error"]) == (400, "invalid_grant")
    assert _refresh(clocked_api, newest["refresh_token"], secret="wrong").json()["error"] == "invalid_client"


def test_revoked_token_gets_401(api):
    api.create_shop()
    assert api.graphql(QUERY).status_code == 200
    assert api.control("POST", f"/shops/{DOMAIN}/revoke-token", json={}).json() == {"revoked": 1}
    for response in (api.graphql(QUERY), api.rest("GET", "products.json")):
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_uninstall_revokes_sends_app_uninstalled_then_shop_redact(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    result = api.control("POST", f"/shops/{DOMAIN}/uninstall", json={"shop_redact_after": 0.3}).json()
    assert result["shop_redact_in_seconds"] == 0.3
    assert api.graphql(QUERY).status_code == 401
    uninstalled = receiver.wait_for(1, topic="app/uninstalled")[0]
    payload = uninstalled.body
    assert b'"myshopify_domain":"test-shop.myshopify.com"' in payload
    redact = receiver.wait_for(1, topic="shop/redact")[0]
    assert redact.at - uninstalled.at >= 0.25
    assert redact.body.startswith(b'{"shop_id":')
    subscriptions = api.control("GET", f"/shops/{DOMAIN}/subscriptions").json()["subscriptions"]
    assert all(not s["active"] and s["removal_reason"] == "app uninstalled" for s in subscriptions)
    reinstalled = api.control("POST", f"/shops/{DOMAIN}/install", json={"token": "shpat_again"}).json()
    assert api.graphql(QUERY, token=reinstalled["access_token"]).status_code == 200
