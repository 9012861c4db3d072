"""Registry through the API: create, read, update, list with pagination; validation messages."""

from __future__ import annotations

import pytest

from store.auth import Role
from tests.api.conftest import Api, make_tenant

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_create_read_update_list(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    admin = api.tokens["admin"]
    eid = tenant.enterprise["id"]
    assert tenant.enterprise["timezone"] == "Asia/Almaty"
    assert tenant.workplace["shift_starts"] == ["08:00:00"]
    assert tenant.workplace["shift_duration_s"] == 28800
    assert tenant.sensor["workplace_id"] == tenant.workplace["id"], "inherits the device's"

    got = await api.ok("GET", f"/api/v1/workplaces/{tenant.workplace['id']}", tenant.officer)
    assert got["code"] == "ent-a-wp"
    changed = await api.ok(
        "PATCH",
        f"/api/v1/workplaces/{tenant.workplace['id']}",
        tenant.officer,
        json={"headcount": 25, "shift_starts": ["08:00", "20:00"], "shift_duration_s": 43200},
    )
    assert changed["headcount"] == 25
    assert changed["shift_starts"] == ["08:00:00", "20:00:00"]
    sensor = await api.ok(
        "PATCH",
        f"/api/v1/sensors/{tenant.sensor['id']}",
        tenant.officer,
        json={"calibrated_on": "2026-09-01", "calibration_due": "2027-09-01"},
    )
    assert sensor["calibration_due"] == "2027-09-01"

    for n in range(5):
        await api.ok(
            "POST",
            f"/api/v1/enterprises/{eid}/workplaces",
            admin,
            json={"code": f"extra-{n}", "name": f"Extra {n}"},
        )
    first = await api.ok("GET", f"/api/v1/enterprises/{eid}/workplaces", admin, params={"limit": 4})
    second = await api.ok(
        "GET",
        f"/api/v1/enterprises/{eid}/workplaces",
        admin,
        params={"limit": 4, "offset": 4},
    )
    assert first["total"] == second["total"] == 6
    assert len(first["items"]) == 4
    assert len(second["items"]) == 2
    assert {w["id"] for w in first["items"]}.isdisjoint(w["id"] for w in second["items"])


async def test_officer_cannot_change_regulatory_fields(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    path = f"/api/v1/enterprises/{tenant.enterprise['id']}"
    response = await api.call("PATCH", path, tenant.officer, json={"activity_risk_class": 1})
    assert response.status_code == 403
    assert "activity_risk_class" in response.json()["detail"]
    renamed = await api.ok("PATCH", path, tenant.officer, json={"name": "Renamed"})
    assert renamed["name"] == "Renamed"
    done = await api.ok("PATCH", path, api.tokens["admin"], json={"base_rate_pct": 1.55})
    assert done["base_rate_pct"] == 1.55


async def test_the_norms_profile_is_the_enterprises_and_only_an_admin_sets_it(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    path = f"/api/v1/enterprises/{tenant.enterprise['id']}"
    assert tenant.enterprise["norms_profile"] is None  # the service's default profile
    refused = await api.call("PATCH", path, tenant.officer, json={"norms_profile": "default"})
    assert refused.status_code == 403
    assert "norms_profile" in refused.json()["detail"]
    admin = api.tokens["admin"]
    unknown = await api.call("PATCH", path, admin, json={"norms_profile": "../etc/passwd"})
    assert unknown.status_code == 422
    assert "default" in unknown.json()["detail"]  # the profiles there are
    assert (await api.ok("PATCH", path, admin, json={"norms_profile": "default"}))[
        "norms_profile"
    ] == "default"
    assert (await api.ok("GET", path, admin))["norms_profile"] == "default"
    back = await api.ok("PATCH", path, admin, json={"norms_profile": None})
    assert back["norms_profile"] is None
    created = await api.ok(
        "POST",
        "/api/v1/enterprises",
        admin,
        json={"code": "ent-p", "name": "P", "norms_profile": "default"},
    )
    assert created["norms_profile"] == "default"


async def test_validation_errors_say_what_to_fix(api: Api) -> None:
    admin = api.tokens["admin"]
    bad_zone = await api.call(
        "POST",
        "/api/v1/enterprises",
        admin,
        json={"code": "x", "name": "X", "timezone": "Mars/Base"},
    )
    assert bad_zone.status_code == 422
    assert "timezone" in bad_zone.json()["detail"]
    assert "IANA" in bad_zone.json()["detail"]

    tenant = await make_tenant(api, "ent-a", "Almaty")
    bad_unit = await api.call(
        "POST",
        f"/api/v1/devices/{tenant.device['id']}/sensors",
        admin,
        json={"code": "s2", "quantity": "noise_laeq", "unit": "mg/m3"},
    )
    assert bad_unit.status_code == 422
    assert "dB(A)" in bad_unit.json()["detail"]
    no_substance = await api.call(
        "POST",
        f"/api/v1/devices/{tenant.device['id']}/sensors",
        admin,
        json={"code": "s3", "quantity": "gas", "unit": "mg/m3"},
    )
    assert no_substance.status_code == 422
    assert "substance" in no_substance.json()["detail"]


async def test_duplicate_code_is_a_conflict(api: Api) -> None:
    await make_tenant(api, "ent-a", "Almaty")
    again = await api.call(
        "POST", "/api/v1/enterprises", api.tokens["admin"], json={"code": "ent-a", "name": "A"}
    )
    assert again.status_code == 409


async def test_reference_to_another_enterprise_is_refused(api: Api) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    b = await make_tenant(api, "ent-b", "Karaganda")
    response = await api.call(
        "POST",
        f"/api/v1/enterprises/{a.enterprise['id']}/devices",
        api.tokens["admin"],
        json={"code": "dev-x", "workplace_id": b.workplace["id"]},
    )
    assert response.status_code == 422
    assert "workplace" in response.json()["detail"]


async def test_tokens_are_required_and_roles_enforced(api: Api) -> None:
    assert (await api.call("GET", "/api/v1/enterprises", None)).status_code == 401
    assert (await api.call("GET", "/api/v1/enterprises", "qg_nonsense")).status_code == 401
    assert (await api.http.get("/health")).status_code == 200
    scoring = await api.token(Role.SCORING)
    assert (await api.call("GET", "/api/v1/enterprises", scoring)).status_code == 403
    assert (await api.call("GET", "/api/v1/map", scoring)).status_code == 200
    inspector = await api.token(Role.INSPECTOR, regions=("Almaty",))
    denied = await api.call(
        "POST", "/api/v1/enterprises", inspector, json={"code": "x", "name": "X"}
    )
    assert denied.status_code == 403
    me = await api.ok("GET", "/api/v1/me", inspector)
    assert me["role"] == "inspector"
    assert me["regions"] == ["Almaty"]


async def test_readings_range_is_checked(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    path = f"/api/v1/sensors/{tenant.sensor['id']}/readings"
    far = await api.call("GET", path, tenant.officer, params={"to": "0001-01-01T00:30:00Z"})
    assert far.status_code == 422
    naive = await api.call("GET", path, tenant.officer, params={"to": "2026-01-01T00:30:00"})
    assert naive.status_code == 422
    assert "time zone" in naive.json()["detail"]
    empty = await api.ok("GET", path, tenant.officer)
    assert empty["count"] == 0


async def test_instrument_model_serial_and_calibration(api: Api) -> None:
    """What a shift report names of an instrument is kept by the registry: on a device at
    creation, on a sensor where it has its own; too long a value is refused with the field."""
    tenant = await make_tenant(api, "ent-i", "Almaty")
    eid = tenant.enterprise["id"]
    device = await api.ok(
        "POST",
        f"/api/v1/enterprises/{eid}/devices",
        tenant.officer,
        json={
            "code": "ent-i-slm-1",
            "name": "Sound level meter",
            "model": "Svantek SV 971A",
            "serial_number": "97112",
            "calibrated_on": "2026-08-14",
            "calibration_certificate": "КZ-2026/0815",
        },
    )
    assert (device["model"], device["serial_number"]) == ("Svantek SV 971A", "97112")
    assert device["calibrated_on"] == "2026-08-14"
    sensor = await api.ok(
        "POST",
        f"/api/v1/devices/{device['id']}/sensors",
        tenant.officer,
        json={
            "code": "ent-i-slm-1.noise",
            "quantity": "noise_laeq",
            "unit": "dB(A)",
            "serial_number": "MIC-40AE-311",
            "calibration_due": "2027-08-14",
        },
    )
    got = await api.ok("GET", f"/api/v1/sensors/{sensor['id']}", tenant.officer)
    assert got["serial_number"] == "MIC-40AE-311"
    assert got["model"] is None  # its device's model shows on reports
    refused = await api.call(
        "PATCH", f"/api/v1/devices/{device['id']}", tenant.officer, json={"serial_number": "x" * 65}
    )
    assert refused.status_code == 422
    assert "serial_number" in refused.text
